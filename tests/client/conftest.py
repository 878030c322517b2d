"""Fixtures: fake service instances and registries, in-process on port 0 from create_server
(``harness.start_server``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from harness import start_server
from harness.fakes import FakeUsers, users_service
from services.runtime import HealthServicer, ServerConfig
from tests.client._support import Instance, Registry, StartUsers


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


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    """A started registry (no token, default TTL bounds); stopped at teardown."""
    reg = await Registry().start()
    yield reg
    await reg.stop()
