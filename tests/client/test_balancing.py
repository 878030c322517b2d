"""Balancing over instances by gRPC's round_robin, and riding out an instance that dies."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import grpc
import pytest

from harness import Launcher
from services.runtime.client._channel import ChannelHolder
from services.runtime.client._client import Client, ClientConfig, Connection
from services.runtime.client._discovery import RegistryConfig
from services.runtime.client._retry import RetrySettings
from services.user.client import GET_USER
from switchboard.user.v1 import user_service_pb2
from tests.client._support import Registry, StartUsers, wait_for

RETRY = RetrySettings(max_attempts=5, initial_backoff_s=0.01, max_backoff_s=0.1, jitter_s=0.02)
REQUEST = user_service_pb2.GetUserRequest(id="x")


async def _load(
    conn: Connection,
    total: int,
    workers: int,
    at_fraction: float,
    event: Callable[[], Awaitable[None]],
) -> tuple[Counter[str], list[BaseException]]:
    """``total`` GetUser calls from ``workers`` at once; run ``event`` part-way through."""
    served: Counter[str] = Counter()
    failures: list[BaseException] = []
    remaining = total
    trigger = int(total * at_fraction)

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            if remaining == trigger:
                await event()
            try:
                reply = await conn.call(GET_USER, REQUEST, timeout_s=5)
            except Exception as err:  # the test asserts there are none
                failures.append(err)
            else:
                served[reply.user.id] += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return served, failures


async def test_calls_spread_and_survive_a_stopped_instance(start_users: StartUsers) -> None:
    instances = [await start_users(name) for name in ("a", "b", "c")]
    for instance in instances:
        instance.servicer.default_sleep = 0.002  # so some calls are in flight at the stop
    config = ClientConfig(static={"user": tuple(i.address for i in instances)}, retry=RETRY)
    async with Client(config) as client:
        conn = await client.connect("user")
        before = {i.servicer.name: 0 for i in instances}

        async def stop_c() -> None:
            before.update({i.servicer.name: i.servicer.calls["GetUser"] for i in instances})
            await instances[2].server.stop(0)

        served, failures = await _load(conn, total=1500, workers=32, at_fraction=0.5, event=stop_c)
    assert failures == []
    assert sum(served.values()) == 1500
    assert min(before.values()) >= 150, before  # ~250 each before the stop: round robin
    assert served["a"] > 500 and served["b"] > 500  # the survivors took over


@pytest.mark.e2e
async def test_sigkilled_instance_under_load_loses_no_call(
    registry: Registry, launcher: Launcher
) -> None:
    args = ("--registry", registry.address, "--registry-ttl-s", "3")
    processes = await asyncio.gather(
        *(launcher.start("tests.client._fake_server", "--name", name, *args) for name in "abc")
    )
    config = ClientConfig(registry=RegistryConfig(addresses=(registry.address,)), retry=RETRY)
    try:
        async with Client(config) as client:
            conn = await client.connect("user")
            await wait_for(lambda: len(conn.addresses) == 3, timeout_s=10)

            async def kill_c() -> None:
                processes[2].kill()

            served, failures = await _load(conn, 1200, workers=32, at_fraction=0.5, event=kill_c)
    finally:
        for process in processes:
            process.kill()
    assert failures == []
    assert set(served) == {"a", "b", "c"}
    assert min(served.values()) >= 100, served


async def test_channel_swap_lets_in_flight_calls_finish(start_users: StartUsers) -> None:
    old, new = await start_users("old"), await start_users("new")
    old.servicer.script["GetUser"] = [0.4]
    async with Client(ClientConfig(static={"user": (old.address,)}, retry=RETRY)) as client:
        conn = await client.connect("user")
        slow = asyncio.create_task(conn.call(GET_USER, REQUEST))
        await wait_for(lambda: old.servicer.calls["GetUser"] == 1)
        await conn.set_discovered((new.address,))
        assert (await conn.call(GET_USER, REQUEST)).user.id == "new"
        assert (await slow).user.id == "old"  # finished on the old channel after the swap
        assert conn.addresses == (new.address,)


async def test_target_lists_every_instance(start_users: StartUsers) -> None:
    a, b = await start_users("a"), await start_users("b")
    async with Client(ClientConfig(static={"user": (b.address, a.address)})) as client:
        conn = await client.connect("user")
        live = conn._holder.live
        assert live is not None
        assert live.target == "ipv4:" + ",".join(sorted((a.address, b.address)))
        names = {(await conn.call(GET_USER, REQUEST)).user.id for _ in range(10)}
        assert names == {"a", "b"}


async def test_instance_reporting_not_serving_gets_no_calls(start_users: StartUsers) -> None:
    a, b = await start_users("a"), await start_users("b")
    async with Client(ClientConfig(static={"user": (a.address, b.address)})) as client:
        conn = await client.connect("user")
        assert {(await conn.call(GET_USER, REQUEST)).user.id for _ in range(10)} == {"a", "b"}
        await b.health.enter_graceful_shutdown()  # what serve() does first on SIGTERM
        for _ in range(100):  # the health watch reaches the client within a few ms
            served = {(await conn.call(GET_USER, REQUEST)).user.id for _ in range(10)}
            if served == {"a"}:
                break
            await asyncio.sleep(0.02)
        assert served == {"a"}


def test_tls_to_several_instances_checks_the_services_name() -> None:
    """A list target's authority names no certificate: the service's name stands in."""
    credentials = grpc.ssl_channel_credentials()
    holder = ChannelHolder("user", credentials=credentials)
    override = ("grpc.ssl_target_name_override", "user")
    assert override in holder._tls_options("ipv4:127.0.0.1:1,127.0.0.1:2")
    assert override not in holder._tls_options("ipv4:127.0.0.1:1")  # its address names it
    named = ChannelHolder("user", credentials=credentials, options=[(override[0], "users.lan")])
    assert override not in named._tls_options("ipv4:127.0.0.1:1,127.0.0.1:2")
