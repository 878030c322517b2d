"""gRPC servers inside the test process, on a free loopback port.

Two kinds: a Switchboard server from the production factory
(``services.runtime.create_server``: interceptors, health, reflection, limits)
and a bare ``grpc.aio`` server for a foreign API the test fakes (an OTLP
collector, one method of a producer).

Example::

    async with serving([users_service(FakeUsers())]) as server:
        channel = grpc.aio.insecure_channel(server.address)

    async with serving_plain(lambda s: add_TraceServiceServicer_to_server(fake, s)) as server:
        ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
import grpc.aio

from services.runtime import HealthServicer, ServerConfig, Service, create_server

__all__ = [
    "InProcessServer",
    "serving",
    "serving_plain",
    "start_plain_server",
    "start_server",
]


@dataclass
class InProcessServer:
    """A started in-process server and its port on 127.0.0.1."""

    server: grpc.aio.Server
    port: int
    health: HealthServicer | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop serving (``grace_s`` None: cancel calls in flight now)."""
        await self.server.stop(grace_s)


async def start_server(
    services: Sequence[Service],
    config: ServerConfig | None = None,
    *,
    port: int = 0,
    health: HealthServicer | None = None,
) -> InProcessServer:
    """Start ``services`` with ``create_server`` on 127.0.0.1:``port`` (0: a free one).

    ``config`` supplies everything else (TLS, auth, limits); its ``listen`` is replaced.
    Example: ``server = await start_server([service], ServerConfig(grace_s=0))``.
    """
    listen = f"127.0.0.1:{port}"
    config = dataclasses.replace(config or ServerConfig(), listen=listen)
    server, bound = create_server(services, config, health=health)
    await server.start()
    return InProcessServer(server, bound, health)


async def start_plain_server(
    *adders: Callable[[grpc.aio.Server], None], port: int = 0
) -> InProcessServer:
    """Start a bare ``grpc.aio`` server with each ``adders(server)`` registering a servicer."""
    server = grpc.aio.server()
    for add in adders:
        add(server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return InProcessServer(server, bound)


@asynccontextmanager
async def serving(
    services: Sequence[Service],
    config: ServerConfig | None = None,
    *,
    health: HealthServicer | None = None,
) -> AsyncIterator[InProcessServer]:
    """:func:`start_server` for the block; stopped at its end."""
    started = await start_server(services, config, health=health)
    try:
        yield started
    finally:
        await started.stop()


@asynccontextmanager
async def serving_plain(
    *adders: Callable[[grpc.aio.Server], None],
) -> AsyncIterator[InProcessServer]:
    """:func:`start_plain_server` for the block; stopped at its end."""
    started = await start_plain_server(*adders)
    try:
        yield started
    finally:
        await started.stop()
