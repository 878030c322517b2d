"""Network faults between a client and a real user-service process, through a TCP fault proxy.

* Deadlines fire on time (within 10 %) when replies are delayed or blackholed,
  through the client runtime (retries included) and through a plain channel.
* Keepalive notices a dead connection: the server closes a blackholed
  connection after keepalive time + timeout, and a client with the runtime's
  channel options (their times scaled down 60x: 30 s -> 0.5 s) fails its open
  stream with UNAVAILABLE - neither waits for a deadline.
* A connection reset mid-call fails a stream at once and a read is retried
  on a new connection within its deadline; calls recover when a fault heals.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from harness import Launcher, Process
from services.runtime import Client, ClientConfig, DeadlineExceeded, RetrySettings, Unavailable
from services.user.client import UserClient
from switchboard.user.v1 import user_service_pb2 as us
from tests._support import LoopLag
from tests.reliability._support.proxy import FaultProxy
from tests.reliability._support.waits import close_stream, eventually

pytestmark = pytest.mark.e2e

KEEPALIVE_S = 0.5
_TIMED = {"grpc.keepalive_time_ms", "grpc.keepalive_timeout_ms", "grpc.http2.ping_timeout_ms"}


def scaled_runtime_options() -> tuple[tuple[str, Any], ...]:
    """The client runtime's own channel options, keepalive times scaled to KEEPALIVE_S.

    The runtime pings every 30 s: a test cannot wait for that, but it can keep
    every ratio and every other option the runtime chose.
    """
    defaults = dict(ClientConfig().channel_options)
    factor = KEEPALIVE_S * 1000 / defaults["grpc.keepalive_time_ms"]
    return tuple(
        (key, max(1, round(value * factor)) if key in _TIMED else value)
        for key, value in defaults.items()
    )


@dataclass
class Setup:
    user: Process
    proxy: FaultProxy
    client: Client
    users: UserClient
    user_id: str


@pytest.fixture
async def setup(launcher: Launcher, tmp_path: Path) -> AsyncIterator[Setup]:
    user = await launcher.start(
        "services.user",
        *("--data-dir", str(tmp_path / "user")),
        *("--keepalive-time-s", str(KEEPALIVE_S), "--keepalive-timeout-s", str(KEEPALIVE_S)),
        *("--min-ping-interval-s", "0.1"),
    )
    proxy = FaultProxy("127.0.0.1", user.port)
    await proxy.start()
    config = ClientConfig(
        static={"user": (proxy.address,)},
        retry=RetrySettings(max_attempts=10, max_backoff_s=0.2),
        channel_options=scaled_runtime_options(),
    )
    client = Client(config)
    try:
        users = await UserClient.connect(client)
        created = await users.create_user(email="ada@example.com", display_name="Ada")
        yield Setup(user, proxy, client, users, created.id)
    finally:
        await client.close()
        await proxy.close()


async def elapsed_until_deadline(setup: Setup, timeout_s: float) -> tuple[float, float]:
    """How long a GetUser with ``timeout_s`` took to fail, and the loop's worst lag meanwhile."""
    async with LoopLag() as lag:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            await setup.users.get_user(setup.user_id, timeout_s=timeout_s)
        elapsed = time.monotonic() - started
    return elapsed, lag.worst


def assert_on_time(elapsed: float, timeout_s: float, lag_s: float) -> None:
    """Within 10 % of the deadline; late by no more than the event loop itself ran late."""
    assert 0.9 * timeout_s <= elapsed <= 1.1 * timeout_s + lag_s, (
        f"{elapsed:.3f} s for {timeout_s} s (loop lag {lag_s:.3f} s)"
    )


@pytest.mark.parametrize("fault", ["delay", "blackhole"])
async def test_deadlines_fire_on_time_through_the_client_runtime(setup: Setup, fault: str) -> None:
    if fault == "delay":
        setup.proxy.delay(3.0)
    else:
        setup.proxy.blackhole()
    for timeout_s in (0.5, 1.0):
        elapsed, lag_s = await elapsed_until_deadline(setup, timeout_s)
        assert_on_time(elapsed, timeout_s, lag_s)
    setup.proxy.heal()
    user = await setup.users.get_user(setup.user_id, timeout_s=5.0)
    assert user.id == setup.user_id


async def test_deadlines_fire_on_time_on_a_plain_channel(setup: Setup) -> None:
    setup.proxy.delay(3.0)
    async with grpc.aio.insecure_channel(setup.proxy.address) as channel:
        get = channel.unary_unary(
            "/switchboard.user.v1.UserService/GetUser",
            request_serializer=us.GetUserRequest.SerializeToString,
            response_deserializer=us.GetUserResponse.FromString,
        )
        for timeout_s in (0.5, 1.0):
            async with LoopLag() as lag:
                started = time.monotonic()
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await get(us.GetUserRequest(id=setup.user_id), timeout=timeout_s)
                elapsed = time.monotonic() - started
            assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert_on_time(elapsed, timeout_s, lag.worst)


async def test_the_server_closes_a_blackholed_connection(setup: Setup) -> None:
    stream = setup.users.watch_users(start_revision=0)
    await asyncio.wait_for(anext(stream), 5.0)  # the stream is open and flowing
    setup.proxy.upstream_closed.clear()
    setup.proxy.blackhole()
    started = time.monotonic()
    await asyncio.wait_for(setup.proxy.upstream_closed.wait(), 4 * KEEPALIVE_S + 2.0)
    took = time.monotonic() - started
    assert took >= KEEPALIVE_S, f"closed after {took:.2f} s: not by keepalive"
    await close_stream(stream)


async def test_a_client_notices_a_dead_connection_by_keepalive(setup: Setup) -> None:
    stream = setup.users.watch_users(start_revision=0)
    await asyncio.wait_for(anext(stream), 5.0)
    setup.proxy.blackhole()
    started = time.monotonic()
    with pytest.raises(Unavailable):  # a TimeoutError here: keepalive noticed nothing
        async with asyncio.timeout(4 * KEEPALIVE_S + 2.0):
            async for _ in stream:  # no deadline: only keepalive can end this
                pass
    took = time.monotonic() - started
    # The blackhole lands anywhere between two pings: the earliest a ping can time out
    # is one ping timeout after the blackhole, the latest a keepalive time after that.
    ping_timeout_s = dict(scaled_runtime_options())["grpc.http2.ping_timeout_ms"] / 1000
    assert took >= ping_timeout_s, f"ended after {took:.2f} s: not by keepalive"
    setup.proxy.heal()
    user = await setup.users.get_user(setup.user_id, timeout_s=5.0)
    assert user.id == setup.user_id


async def test_a_reset_fails_a_stream_at_once_and_reads_recover(setup: Setup) -> None:
    stream = setup.users.watch_users(start_revision=0)
    await asyncio.wait_for(anext(stream), 5.0)
    async with LoopLag() as lag:
        started = time.monotonic()
        assert setup.proxy.reset() >= 1
        with pytest.raises(Unavailable):
            async with asyncio.timeout(2.0):
                async for _ in stream:
                    pass
        took = time.monotonic() - started
    assert took < 1.0 + lag.worst, f"{took:.3f} s (loop lag {lag.worst:.3f} s)"
    user = await setup.users.get_user(setup.user_id, timeout_s=5.0)
    assert user.id == setup.user_id


async def test_a_read_reset_mid_call_is_retried_on_a_new_connection(setup: Setup) -> None:
    setup.proxy.blackhole()  # the request reaches the proxy and waits there
    sent = setup.proxy.bytes_from_clients
    call = asyncio.create_task(setup.users.get_user(setup.user_id, timeout_s=5.0))
    await eventually(lambda: setup.proxy.bytes_from_clients > sent, 5.0, "request in flight")
    setup.proxy.reset()
    setup.proxy.heal()
    user = await asyncio.wait_for(call, 6.0)
    assert user.id == setup.user_id
    assert setup.proxy.connections >= 2  # the retry went over a new connection
