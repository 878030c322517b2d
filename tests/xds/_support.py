"""Helpers the xds tests share (the conftest's fixtures build on them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc.aio

from registry import MemoryStore
from registry.xds import ControlPlane
from switchboard.registry.v1 import instance_pb2

__all__ = ["MakeXdsRegistry", "XdsRegistry"]


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
