"""The console's health check: grpc.health.v1 ``Check`` against one instance, bounded.

Example: ``await check_health("127.0.0.1:50052")`` answers ``"SERVING"``,
``"NOT_SERVING"``, ``"UNREACHABLE"`` (nothing answered within the timeout) or
the status code's name (``"UNIMPLEMENTED"``: no health service).
"""

from __future__ import annotations

import grpc
import grpc.aio
from grpc_health.v1 import (  # type: ignore[import-untyped, unused-ignore]
    health_pb2,
    health_pb2_grpc,
)

__all__ = ["check_health"]

_UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


async def check_health(address: str, timeout_s: float = 1.0) -> str:
    """The instance's overall serving status (service ``""``), within ``timeout_s``."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
        except grpc.aio.AioRpcError as err:
            return "UNREACHABLE" if err.code() in _UNREACHABLE else err.code().name
    name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return name
