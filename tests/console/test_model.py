"""ConsoleModel against an in-process MemoryStore: what it publishes for each kind of change."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from registry.console import ConsoleModel, TtlTap
from registry.console._model import Message
from registry.store import MemoryStore
from switchboard.registry.v1 import instance_pb2

_BOUND_S = 5.0


def _instance(service: str, instance_id: str) -> instance_pb2.Instance:
    return instance_pb2.Instance(
        service=service, instance_id=instance_id, address="127.0.0.1:1", version="1"
    )


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    store = MemoryStore(initial_revision=100, reap_interval=0.05)
    await store.start()
    yield store
    await store.close()


@pytest.fixture
async def model(store: MemoryStore) -> AsyncIterator[ConsoleModel]:
    model = ConsoleModel(store, discover_interval_s=0.02, renew_interval_s=0.05)
    await model.start()
    yield model
    await model.stop()


async def _next(queue: asyncio.Queue[Message | None], kind: str) -> dict[str, Any]:
    """The next message of ``kind`` (others skipped), within a bound."""
    async with asyncio.timeout(_BOUND_S):
        while True:
            message = await queue.get()
            assert message is not None
            if message[0] == kind:
                return message[1]


async def test_a_new_service_is_followed_from_its_first_event(
    store: MemoryStore, model: ConsoleModel
) -> None:
    queue = model.subscribe()
    await store.register(_instance("user", "u-1"), ttl=10.0)
    event = (await _next(queue, "change"))["event"]
    assert (event["type"], event["service"], event["instance_id"]) == ("ADDED", "user", "u-1")
    assert model.service_json("user")["instance_count"] == 1


async def test_expiry_and_deregistration_are_told_apart(
    store: MemoryStore, model: ConsoleModel
) -> None:
    queue = model.subscribe()
    ttls: dict[tuple[str, str], float] = model.lease_ttls
    tap = TtlTap(store, ttls)
    kept = await tap.register(_instance("user", "kept"), ttl=10.0)
    await tap.register(_instance("user", "lapsing"), ttl=0.1)
    assert ttls[("user", "kept")] == 10.0
    await _next(queue, "change")
    await _next(queue, "change")
    await tap.deregister(kept.lease_id)
    gone = {(await _next(queue, "change"))["event"]["instance_id"] for _ in range(2)}
    assert gone == {"kept", "lapsing"}
    kinds = {e["instance_id"]: e["type"] for e in model.timeline if e["type"] != "ADDED"}
    assert kinds == {"kept": "REMOVED", "lapsing": "EXPIRED"}
    assert model.service_json("user")["instance_count"] == 0
    assert ("user", "lapsing") not in ttls


async def test_renewals_are_published_though_they_move_no_revision(
    store: MemoryStore, model: ConsoleModel
) -> None:
    queue = model.subscribe()
    reg = await store.register(_instance("user", "u-1"), ttl=10.0)
    await _next(queue, "change")
    await asyncio.sleep(0.01)  # the renewal must land on a later millisecond
    await store.renew(reg.lease_id)
    renewals = await _next(queue, "renewals")
    assert list(renewals["renewals"]["user"]) == ["u-1"]


async def test_a_subscriber_that_falls_behind_is_told_to_reconnect(
    store: MemoryStore, model: ConsoleModel
) -> None:
    queue = model.subscribe()
    for _ in range(queue.maxsize + 1):
        model._publish("health", {"health": []})
    assert queue.get_nowait() is None
