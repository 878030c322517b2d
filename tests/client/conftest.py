"""Fixtures: fake service instances and registries, in-process on port 0 from create_server."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from registry import MemoryStore, RegistryServicer, RegistrySettings, registry_service
from services.runtime import HealthServicer, ServerConfig, create_server
from tests.client._fakes import FakeUsers, users_service

REPO = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"listening on (\S+):(\d+)")


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll ``predicate`` every 10 ms until it holds; fail the test after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        for _ in range(int(timeout_s / 0.01) + 1):
            if predicate():
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout_s} s")


class LoopLag:
    """Measures how late the event loop runs timers while a block runs (CPU starvation).

    Timing assertions add ``worst`` to their tolerance: a loaded machine delays
    every wake-up, which says nothing about the code under test.

    Example::

        async with LoopLag() as lag:
            await call()
        assert elapsed <= 0.3 + 0.05 + lag.worst
    """

    def __init__(self, tick_s: float = 0.005) -> None:
        self.worst = 0.0
        self._tick = tick_s
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(100_000):  # bounded; cancelled long before
            start = loop.time()
            await asyncio.sleep(self._tick)
            self.worst = max(self.worst, loop.time() - start - self._tick)


@dataclass
class Instance:
    """One started fake user service."""

    servicer: FakeUsers
    server: grpc.aio.Server
    port: int
    health: HealthServicer

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


StartUsers = Callable[..., Awaitable[Instance]]


@pytest.fixture
async def start_users() -> AsyncIterator[StartUsers]:
    """Start fake user services on port 0; all stopped at teardown."""
    started: list[Instance] = []

    async def start(name: str = "users", port: int = 0) -> Instance:
        servicer, health = FakeUsers(name), HealthServicer()
        config = ServerConfig(listen=f"127.0.0.1:{port}", grace_s=0)
        server, bound = create_server([users_service(servicer)], config, health=health)
        await server.start()
        started.append(Instance(servicer, server, bound, health))
        return started[-1]

    yield start
    for instance in started:
        await instance.server.stop(None)


@dataclass
class Registry:
    """An in-process registry that can be stopped and started again on the same port."""

    settings: RegistrySettings = field(default_factory=RegistrySettings)
    port: int = 0
    server: grpc.aio.Server | None = None
    store: MemoryStore | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> Registry:
        """Start (again) with an empty store: to its clients, a restarted registry."""
        self.store = MemoryStore(self.settings.limits, reap_interval=0.05)
        await self.store.start()
        servicer = RegistryServicer(self.store, self.settings)
        config = ServerConfig(listen=f"127.0.0.1:{self.port}", grace_s=0)
        self.server, self.port = create_server([registry_service(servicer)], config)
        await self.server.start()
        return self

    async def stop(self) -> None:
        server, self.server = self.server, None
        store, self.store = self.store, None
        if server is not None:
            await server.stop(None)
        if store is not None:
            await store.close()


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    """A started registry (no token, default TTL bounds); stopped at teardown."""
    reg = await Registry().start()
    yield reg
    await reg.stop()


@dataclass
class Process:
    """A subprocess that printed ``listening on HOST:PORT``."""

    proc: asyncio.subprocess.Process
    port: int
    drain: asyncio.Task[None]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


async def spawn(module: str, *args: str, timeout_s: float = 15.0) -> Process:
    """Run ``python -m module args`` and wait (bounded) until it logs its port."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args,
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(timeout_s):
            while line := await proc.stdout.readline():
                lines.append(line.decode(errors="replace"))
                if found := _LISTENING.search(lines[-1]):
                    drain = asyncio.create_task(_drain(proc.stdout))
                    return Process(proc, int(found.group(2)), drain)
    except TimeoutError:
        pass
    proc.kill()
    await proc.wait()
    raise AssertionError(f"{module} did not report its port:\n{''.join(lines)}")


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def stop_process(process: Process) -> None:
    """Kill a subprocess if it still runs and reap it."""
    if process.proc.returncode is None:
        process.proc.kill()
    await process.proc.wait()
    await process.drain
