"""serve() and run_main(): lifecycle order, graceful drain on SIGTERM, exit codes."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped, unused-ignore]

from services.runtime import ServerConfig, configure_logging, serve
from tests.runtime._support import SERVICE_NAME, build_service, unary

ROOT = Path(__file__).resolve().parents[2]
APP = [sys.executable, "-m", "tests.runtime.serve_app"]
SLOW = "/switchboard.test.v1.Slow/Slow"
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVING = health_pb2.HealthCheckResponse.SERVING


class RecordingHook:
    """Records the lifecycle and what health said when ``stopping`` ran."""

    def __init__(self, events: list[str], name: str) -> None:
        self.events = events
        self.name = name
        self.port = 0
        self.health_when_stopping: int | None = None
        self.ready = asyncio.Event()

    async def started(self, port: int) -> None:
        self.port = port
        self.events.append(f"{self.name}.started")
        self.ready.set()

    async def stopping(self) -> None:
        self.events.append(f"{self.name}.stopping")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            self.health_when_stopping = reply.status


async def test_hooks_run_in_order_around_serving() -> None:
    events: list[str] = []
    first, second = RecordingHook(events, "a"), RecordingHook(events, "b")
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve([build_service()], ServerConfig(grace_s=1), hooks=[first, second], stop=stop)
    )
    await asyncio.wait_for(second.ready.wait(), 10)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
        assert reply.status == SERVING
        assert await unary(channel, "Echo")(b"x") == b"x"
    stop.set()
    await asyncio.wait_for(task, 10)
    assert events == ["a.started", "b.started", "b.stopping", "a.stopping"]
    assert first.health_when_stopping == NOT_SERVING


# --- a real process ------------------------------------------------------------------


@pytest.fixture
async def app() -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        *APP,
        "--listen",
        "127.0.0.1:0",
        "--grace-s",
        "5",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    yield process
    if process.returncode is None:
        process.kill()
        await process.wait()


async def _line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 15)
    return line.decode().strip()


async def _port(process: asyncio.subprocess.Process) -> int:
    line = await _line(process)
    assert line.startswith("PORT "), line
    return int(line.split()[1])


async def _next_status(call: grpc.aio.UnaryStreamCall[Any, Any]) -> int:
    reply: Any = await asyncio.wait_for(call.read(), 10)
    status: int = reply.status
    return status


async def test_sigterm_drains_in_flight_calls_and_exits_0(app: asyncio.subprocess.Process) -> None:
    port = await _port(app)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert await _next_status(watch) == SERVING
        slow = asyncio.ensure_future(unary(channel, SLOW)(b"1.0", timeout=10))
        assert await _line(app) == "BEGIN"
        app.send_signal(signal.SIGTERM)
        assert await _next_status(watch) == NOT_SERVING
        watch.cancel()  # an open watch would hold the drain for the whole grace period
        assert await _line(app) == "STOPPING"
        assert await asyncio.wait_for(slow, 10) == b"done"
    assert await asyncio.wait_for(app.wait(), 15) == 0
    assert app.stderr is not None
    log = (await app.stderr.read()).decode()
    assert "code=OK" in log and "switchboard.access" in log
    assert "Traceback" not in log


async def test_second_signal_exits_at_once(app: asyncio.subprocess.Process) -> None:
    port = await _port(app)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        slow = asyncio.ensure_future(unary(channel, SLOW)(b"30", timeout=60))
        assert await _line(app) == "BEGIN"
        app.send_signal(signal.SIGTERM)
        assert await _line(app) == "STOPPING"
        app.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(app.wait(), 5) == 128 + signal.SIGTERM
        with pytest.raises(grpc.aio.AioRpcError):
            await asyncio.wait_for(slow, 10)


def test_busy_port_exits_2_with_one_line() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [*APP, "--listen", f"127.0.0.1:{port}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: port {port} is busy: is another instance running?"


def test_bad_flag_exits_2_without_traceback() -> None:
    done = subprocess.run(
        [*APP, "--listen", "127.0.0.1:99999"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "port must be 0-65535" in done.stderr
    assert "Traceback" not in done.stderr


def test_log_records_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging("INFO")
        try:
            raise ValueError("first\nsecond")
        except ValueError:
            logging.getLogger("switchboard.test").exception("failed")
    finally:
        root.handlers[:] = handlers  # configure_logging replaced pytest's handlers too
        root.setLevel(level)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert " ERROR switchboard.test failed | Traceback" in lines[0]
