"""Fixtures: an in-process registry with the xDS control plane, and a process launcher."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc.aio
import pytest

from harness import Launcher, start_server
from registry import MemoryStore, RegistryServicer, RegistrySettings, registry_service
from registry.xds import ControlPlane
from switchboard.registry.v1 import instance_pb2


@dataclass
class XdsRegistry:
    """A started in-process registry serving ADS, its store, and a channel to it."""

    store: MemoryStore
    plane: ControlPlane
    server: grpc.aio.Server
    channel: grpc.aio.Channel
    port: int

    async def register(self, service: str, address: str, ttl_s: float = 30.0) -> str:
        """Register an instance straight in the store; return its lease id."""
        instance = instance_pb2.Instance(
            service=service, instance_id=f"{service}-{address}", address=address
        )
        return (await self.store.register(instance, ttl_s)).lease_id

    async def close(self) -> None:
        await self.channel.close()
        await self.plane.stopping()
        await self.store.close()
        await self.server.stop(None)


MakeXdsRegistry = Callable[..., Awaitable[XdsRegistry]]


@pytest.fixture
async def make_xds_registry() -> AsyncIterator[MakeXdsRegistry]:
    """Start registries (port 0) serving RegistryService and ADS; stopped at teardown."""
    started: list[XdsRegistry] = []

    async def make(settings: RegistrySettings | None = None) -> XdsRegistry:
        settings = settings or RegistrySettings()
        store = MemoryStore(settings.limits, reap_interval=0.05)
        await store.start()
        plane = ControlPlane(store)
        services = [registry_service(RegistryServicer(store, settings)), plane.service()]
        server = await start_server(services)
        channel = grpc.aio.insecure_channel(server.address)
        started.append(XdsRegistry(store, plane, server.server, channel, server.port))
        return started[-1]

    yield make
    for registry in reversed(started):
        await registry.close()


@pytest.fixture
async def xds_registry(make_xds_registry: MakeXdsRegistry) -> XdsRegistry:
    """An in-process registry with the control plane and no token."""
    return await make_xds_registry()


@pytest.fixture
async def launcher(tmp_path: Path) -> AsyncIterator[Launcher]:
    """Start real processes; every process group is killed at teardown."""
    async with Launcher(tmp_path) as launch:
        yield launch
