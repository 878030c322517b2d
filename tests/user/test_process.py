"""End to end: ``python -m services.user`` as real processes sharing one data dir."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path

import grpc.aio
import pytest

from harness import Process, StartProcess
from services.runtime import errors as e
from switchboard.user.v1 import user_service_pb2 as pb
from switchboard.user.v1 import user_service_pb2_grpc
from tests._support import failure
from tests.observability._support import eventually, http_address, sample, scrape
from tests.user._support import WAIT, create, read_event

pytestmark = pytest.mark.e2e


async def test_acknowledged_write_survives_sigkill(
    start_process: StartProcess, tmp_path: Path
) -> None:
    data = str(tmp_path / "data")
    first = await start_process("services.user", "--data-dir", data)
    async with grpc.aio.insecure_channel(first.address) as channel:
        user = await create(user_service_pb2_grpc.UserServiceStub(channel), "kill@example.com")
    first.signal(signal.SIGKILL)  # right after the ack: no chance to flush anything more
    assert await first.wait_exit() == -signal.SIGKILL
    second = await start_process("services.user", "--data-dir", data)
    async with grpc.aio.insecure_channel(second.address) as channel:
        stub = user_service_pb2_grpc.UserServiceStub(channel)
        assert (await stub.GetUser(pb.GetUserRequest(id=user.id), timeout=WAIT)).user == user
    assert await second.stop() == 0
    check = sqlite3.connect(tmp_path / "data" / "user.db")
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    check.close()


async def _started(process: Process, *methods: str) -> None:
    """Wait (bounded) until the server has started a call of each method (its metrics)."""

    async def counts() -> list[float]:
        text = await scrape(http_address(process))
        return [sample(text, "grpc_server_started_total", grpc_method=m) or 0.0 for m in methods]

    await eventually(counts, lambda seen: all(seen), 10.0, f"{methods} started")


async def test_sigterm_lets_an_in_flight_call_finish_then_exits_zero(
    start_process: StartProcess, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    process = await start_process("services.user", "--data-dir", str(data), "--grace-s", "8")
    # Another "process" holds the write lock, so the CreateUser below stays in flight.
    blocker = sqlite3.connect(data / "user.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    async with grpc.aio.insecure_channel(process.address) as channel:
        stub = user_service_pb2_grpc.UserServiceStub(channel)
        watch = stub.WatchUsers(pb.WatchUsersRequest())
        in_flight = asyncio.ensure_future(create(stub, "late@example.com"))
        await _started(process, "WatchUsers", "CreateUser")  # both reached the server
        assert not in_flight.done()
        started = time.monotonic()
        process.signal(signal.SIGTERM)
        ended = await failure(watch.read())  # open watches end at once, not after the grace
        assert isinstance(ended, e.Unavailable) and ended.reason == "SHUTTING_DOWN"
        assert not in_flight.done()  # ...while the unary call is still being drained
        blocker.execute("ROLLBACK")
        blocker.close()
        user = await asyncio.wait_for(in_flight, WAIT)
    assert user.email == "late@example.com"
    assert await process.wait_exit() == 0
    assert time.monotonic() - started < 5.0  # well within the 8 s grace
    assert "Traceback" not in process.log()


async def test_watch_sees_changes_committed_by_another_process(
    start_process: StartProcess, tmp_path: Path
) -> None:
    data = str(tmp_path / "data")
    watcher, writer = [await start_process("services.user", "--data-dir", data) for _ in range(2)]
    async with (
        grpc.aio.insecure_channel(watcher.address) as watch_channel,
        grpc.aio.insecure_channel(writer.address) as write_channel,
    ):
        watch = user_service_pb2_grpc.UserServiceStub(watch_channel).WatchUsers(
            pb.WatchUsersRequest(start_revision=0)
        )
        writes = user_service_pb2_grpc.UserServiceStub(write_channel)
        created = [await create(writes, f"p{i}@example.com") for i in range(3)]
        seen = [(await read_event(watch)).event.user for _ in range(3)]
        assert seen == created
        watch.cancel()
    assert await watcher.stop() == 0 and await writer.stop() == 0
