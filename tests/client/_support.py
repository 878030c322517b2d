"""Helpers the client tests share (the conftest's fixtures build on them)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc

from harness import start_server
from harness.fakes import FakeUsers
from registry import MemoryStore, RegistryServicer, RegistrySettings, registry_service
from services.runtime import HealthServicer, ServerConfig

__all__ = ["Instance", "Registry", "StartUsers", "wait_for"]


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll ``predicate`` every 10 ms until it holds; fail the test after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        for _ in range(int(timeout_s / 0.01) + 1):
            if predicate():
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout_s} s")


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
