"""Fixtures: fake service instances and registries, in-process on port 0 from create_server
(``harness.start_server``), and real processes (``harness.Launcher``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from harness import Launcher, start_server
from harness.fakes import FakeUsers, users_service
from registry import MemoryStore, RegistryServicer, RegistrySettings, registry_service
from services.runtime import HealthServicer, ServerConfig


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
        config = ServerConfig(grace_s=0)
        server = await start_server([users_service(servicer)], config, port=port, health=health)
        started.append(Instance(servicer, server.server, server.port, health))
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
        config = ServerConfig(grace_s=0)
        started = await start_server([registry_service(servicer)], config, port=self.port)
        self.server, self.port = started.server, started.port
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


@pytest.fixture
async def launcher(tmp_path: Path) -> AsyncIterator[Launcher]:
    """Real processes (``harness.Launcher``); killed at teardown."""
    async with Launcher(tmp_path) as launch:
        yield launch
