"""Fixtures: an in-process server from the production factory, on port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc.aio
import pytest

from harness import start_server
from services.runtime import HealthServicer, ServerConfig, set_health_status
from services.runtime.server._build import SERVING
from tests.runtime._support import MAX_RECEIVE, build_service


@pytest.fixture
async def server_port() -> AsyncIterator[int]:
    """A started test server (plus health and reflection) answering SERVING."""
    health = HealthServicer()
    service = build_service()
    config = ServerConfig(max_receive_message_bytes=MAX_RECEIVE)
    server = await start_server([service], config, health=health)
    await set_health_status(health, [service], SERVING)
    yield server.port
    await server.stop()


@pytest.fixture
async def channel(server_port: int) -> AsyncIterator[grpc.aio.Channel]:
    """A plaintext channel to the test server."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server_port}") as channel:
        yield channel
