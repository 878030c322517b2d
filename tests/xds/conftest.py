"""Fixtures: an in-process registry with the xDS control plane, and a process launcher."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc.aio
import pytest

from harness import start_server
from registry import MemoryStore, RegistryServicer, RegistrySettings, registry_service
from registry.xds import ControlPlane
from tests.xds._support import MakeXdsRegistry, XdsRegistry


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
