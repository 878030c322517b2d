"""What the operator verbs print: registered services, instances with health, live changes.

``switchboard instances`` lists every registered instance with its address,
version, the age of its last lease renewal and its health (a grpc.health.v1
Check against the instance's own address, short deadline); ``switchboard
services`` the service names and instance counts; ``switchboard watch`` one
line per registry change. :mod:`services.platform.cli` parses the flags.

Example::

    SERVICE  INSTANCE       ADDRESS          VERSION  RENEWED  HEALTH
    user     web-1-4242-9f  127.0.0.1:50052  1.2.0    1.3s     SERVING
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import (  # type: ignore[import-untyped, unused-ignore]
    health_pb2,
    health_pb2_grpc,
)

from services.runtime import RegistryClient
from switchboard.registry.v1 import instance_pb2, registry_service_pb2

__all__ = [
    "InstanceRow",
    "check_health",
    "collect",
    "format_table",
    "render_instances",
    "render_services",
    "watch_lines",
]


@dataclass(frozen=True)
class InstanceRow:
    """One line of the instance table."""

    service: str
    instance_id: str
    address: str
    version: str
    renewed_age_s: float | None
    health: str

    def cells(self) -> list[str]:
        age = "-" if self.renewed_age_s is None else f"{self.renewed_age_s:.1f}s"
        return [self.service, self.instance_id, self.address, self.version or "-", age, self.health]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces.

    Example: ``format_table(["A", "B"], [["x", "yy"]])`` is ``"A  B\\nx  yy"``.
    """
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]
    return "\n".join(lines)


async def check_health(
    address: str, timeout_s: float, credentials: grpc.ChannelCredentials | None = None
) -> str:
    """The grpc.health.v1 status of the server at ``address`` ("" = the whole server).

    ``credentials`` are the ones the registry is dialled with: a platform that
    serves TLS does so on every instance, with certificates from the same CA.
    Returns ``SERVING``/``NOT_SERVING``/... or the failure's code, e.g. ``UNAVAILABLE``.
    """
    channel = (
        grpc.aio.insecure_channel(address)
        if credentials is None
        else grpc.aio.secure_channel(address, credentials)
    )
    async with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
        except grpc.aio.AioRpcError as err:
            return str(err.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))


def _age(instance: instance_pb2.Instance, now: float) -> float | None:
    if not instance.HasField("renew_time"):
        return None
    return max(0.0, now - instance.renew_time.ToNanoseconds() / 1e9)


async def collect(
    registry: RegistryClient,
    services: Sequence[str],
    health_timeout_s: float,
    credentials: grpc.ChannelCredentials | None = None,
) -> list[InstanceRow]:
    """Resolve each service and health-check every instance (concurrently)."""
    instances: list[instance_pb2.Instance] = []
    for service in services:
        instances.extend((await registry.resolve(service)).instances)
    checks = (check_health(i.address, health_timeout_s, credentials) for i in instances)
    health = await asyncio.gather(*checks)
    now = time.time()
    return [
        InstanceRow(i.service, i.instance_id, i.address, i.version, _age(i, now), status)
        for i, status in zip(instances, health, strict=True)
    ]


async def render_services(registry: RegistryClient) -> str:
    """The ``SERVICE  INSTANCES`` table of every service with a live instance."""
    summary = await registry.list_services(timeout_s=5)
    rows = [[s.name, str(s.instance_count)] for s in summary.services]
    return format_table(["SERVICE", "INSTANCES"], rows)


async def render_instances(
    registry: RegistryClient,
    services: Sequence[str],
    health_timeout_s: float,
    credentials: grpc.ChannelCredentials | None = None,
) -> str:
    """The instance table of ``services`` (every registered service when empty)."""
    if not services:
        summary = await registry.list_services(timeout_s=5)
        services = [s.name for s in summary.services]
    found = await collect(registry, services, health_timeout_s, credentials)
    headers = ["SERVICE", "INSTANCE", "ADDRESS", "VERSION", "RENEWED", "HEALTH"]
    return format_table(headers, [row.cells() for row in found])


async def watch_lines(registry: RegistryClient, service: str) -> AsyncIterator[str]:
    """One line per registry change of ``service``, starting with the current instances.

    Example lines::

        rev 12 SNAPSHOT user: 1 instance(s) 127.0.0.1:50052
        rev 13 ADDED    user web-2-99-ab 127.0.0.1:50062 v1.2.0
    """
    async for reply in registry.watch(service):
        yield _watch_line(service, reply)


def _watch_line(service: str, reply: registry_service_pb2.WatchResponse) -> str:
    if reply.HasField("snapshot"):
        snap = reply.snapshot
        where = " ".join(i.address for i in snap.instances)
        count = len(snap.instances)
        return f"rev {snap.revision} SNAPSHOT {service}: {count} instance(s) {where}".rstrip()
    event = reply.event
    kind = instance_pb2.InstanceEventType.Name(event.type).removeprefix("INSTANCE_EVENT_TYPE_")
    i = event.instance
    version = f" v{i.version}" if i.version else ""
    return f"rev {event.revision} {kind:<8} {service} {i.instance_id} {i.address}{version}"
