"""The runtime's durable subscription against a scripted producer, in process.

The producer is a WatchUsers server whose streams are scripted (events, a gap,
an abrupt end); the consumer is a bare store with a ``seen`` table its handler
writes. What is checked: resume from the checkpoint after a disconnect, each
event applied once and in order, a failing handler retried on the same event,
a revision jump counted, and stopping ends the task.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from harness import serving_plain
from services.runtime import Client, ClientConfig
from services.runtime.events import Subscriber, Subscription
from services.runtime.storage import (
    CHECKPOINTS_TABLE,
    CORE_TABLES,
    Migration,
    Store,
    Transaction,
    read_checkpoint,
)
from switchboard.user.v1 import user_pb2, user_service_pb2, user_service_pb2_grpc

WAIT_S = 5.0


class _Consumer(Store):
    DATABASE_FILE = "consumer.db"
    MIGRATIONS = (
        Migration(1, "seen", (*CORE_TABLES, CHECKPOINTS_TABLE, "CREATE TABLE seen (rev INTEGER)")),
    )


class _Producer(user_service_pb2_grpc.UserServiceServicer):
    """A fixed log with a jump (5 -> 9, as a compacted log would show); the first stream is
    cut after three events, later ones stay open like a caught-up Watch."""

    def __init__(self) -> None:
        self.log = [1, 2, 3, 4, 5, 9]
        self.starts: list[int] = []

    async def WatchUsers(
        self, request: user_service_pb2.WatchUsersRequest, context: Any
    ) -> AsyncIterator[user_service_pb2.WatchUsersResponse]:
        self.starts.append(request.start_revision)
        after = [r for r in self.log if r > request.start_revision]
        for sent, revision in enumerate(after):
            if len(self.starts) == 1 and sent == 3:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "going away")
            event = user_pb2.UserEvent(revision=revision, type=user_pb2.USER_EVENT_TYPE_UPDATED)
            yield user_service_pb2.WatchUsersResponse(event=event)
        await asyncio.Event().wait()


async def _until(check: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)  # polling in-process state: no event to await


@pytest.fixture
async def producer_address() -> AsyncIterator[tuple[str, _Producer]]:
    producer = _Producer()  # type: ignore[abstract]  # only WatchUsers is served
    async with serving_plain(
        lambda server: user_service_pb2_grpc.add_UserServiceServicer_to_server(producer, server)
    ) as server:
        yield server.address, producer


async def test_resumes_applies_once_in_order_retries_and_counts_a_gap(
    tmp_path: Path, producer_address: tuple[str, _Producer]
) -> None:
    address, producer = producer_address
    store = _Consumer.open(tmp_path)
    failures = [4]  # the handler fails once on revision 4: retried after the backoff

    def handler(tx: Transaction, event: user_pb2.UserEvent) -> None:
        if event.revision in failures:
            failures.remove(event.revision)
            raise RuntimeError("transient")
        tx.conn.execute("INSERT INTO seen (rev) VALUES (?)", (event.revision,))

    subscription = Subscription(
        "test<-user", "user", "/switchboard.user.v1.UserService/WatchUsers", handler
    )
    config = ClientConfig(static={"user": (address,)}, health_check=False)
    async with Client(config) as client:
        subscriber = Subscriber(subscription, store.db, client, backoff_s=0.01, backoff_cap_s=0.05)
        await subscriber.started(0)
        try:
            await _until(lambda: subscriber.checkpoint == 9, "caught up to 9")
        finally:
            await subscriber.stopping()
    seen = await store.db.read(
        lambda c: [r[0] for r in c.execute("SELECT rev FROM seen ORDER BY rowid").fetchall()]
    )
    assert seen == [1, 2, 3, 4, 5, 9]  # once each, in order; 4 after its retry
    assert await store.db.read(lambda c: read_checkpoint(c, "test<-user")) == 9
    assert producer.starts == [0, 3, 3]  # resumed from the checkpoint (cut; handler failure)
    assert subscriber.gaps == 1  # 5 -> 9
    assert subscriber.applied == 6
    store.close()
