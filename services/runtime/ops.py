"""Operator CLI: what is registered, where, and whether it is healthy.

``python -m services.runtime.ops`` lists every registered instance with its
address, version, the age of its last lease renewal and its health (a
grpc.health.v1 Check against the instance's own address, short deadline).
``services`` prints only the service names and instance counts. The registry
comes from ``--registry`` or ``SWITCHBOARD_REGISTRY``.

Example::

    $ python -m services.runtime.ops --registry 127.0.0.1:50051
    SERVICE  INSTANCE       ADDRESS          VERSION  RENEWED  HEALTH
    user     web-1-4242-9f  127.0.0.1:50052  1.2.0    1.3s     SERVING

    $ python -m services.runtime.ops services
    SERVICE  INSTANCES
    user     1

Exit status: 0 on success, 1 when the registry cannot be reached, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

import grpc
from grpc_health.v1 import (  # type: ignore[import-untyped, unused-ignore]
    health_pb2,
    health_pb2_grpc,
)

from services.runtime import errors
from services.runtime.client._client import open_registry
from services.runtime.client._discovery import RegistryConfig, add_registry_arguments
from services.runtime.client._typed import RegistryClient
from switchboard.registry.v1 import instance_pb2

__all__ = ["InstanceRow", "check_health", "collect", "format_table", "main", "run"]


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


async def check_health(address: str, timeout_s: float) -> str:
    """The grpc.health.v1 status of the server at ``address`` ("" = the whole server).

    Returns ``SERVING``/``NOT_SERVING``/... or the failure's code, e.g. ``UNAVAILABLE``.
    """
    async with grpc.aio.insecure_channel(address) as channel:
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
    registry: RegistryClient, services: Sequence[str], health_timeout_s: float
) -> list[InstanceRow]:
    """Resolve each service and health-check every instance (concurrently)."""
    instances: list[instance_pb2.Instance] = []
    for service in services:
        instances.extend((await registry.resolve(service)).instances)
    health = await asyncio.gather(*(check_health(i.address, health_timeout_s) for i in instances))
    now = time.time()
    return [
        InstanceRow(i.service, i.instance_id, i.address, i.version, _age(i, now), status)
        for i, status in zip(instances, health, strict=True)
    ]


def build_parser() -> argparse.ArgumentParser:
    """``[registry flags] [--health-timeout-s S] [instances [SERVICE...] | services]``."""
    parser = argparse.ArgumentParser(
        prog="python -m services.runtime.ops",
        description="List registered services and instances, with their health.",
    )
    add_registry_arguments(parser)
    parser.add_argument("--health-timeout-s", type=float, default=1.0, help="health deadline")
    parser.add_argument(
        "command", nargs="?", default="instances", choices=("instances", "services")
    )
    parser.add_argument("service", nargs="*", help="only these services (instances command)")
    return parser


async def run(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, query the registry and print a table; returns the exit status."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        config = RegistryConfig.from_args(ns)
    except ValueError as err:
        parser.error(str(err))
    if not config.enabled:
        parser.error("no registry: pass --registry HOST:PORT or set SWITCHBOARD_REGISTRY")
    conn = await open_registry(config)
    try:
        print(await _render(RegistryClient(conn), ns))
    except errors.SwitchboardError as err:
        print(f"error: registry {', '.join(config.addresses)}: {err}", file=sys.stderr)
        return 1
    finally:
        await conn.close()
    return 0


async def _render(registry: RegistryClient, ns: argparse.Namespace) -> str:
    summary = await registry.list_services(timeout_s=5)
    if ns.command == "services":
        rows = [[s.name, str(s.instance_count)] for s in summary.services]
        return format_table(["SERVICE", "INSTANCES"], rows)
    names = ns.service or [s.name for s in summary.services]
    found = await collect(registry, names, ns.health_timeout_s)
    headers = ["SERVICE", "INSTANCE", "ADDRESS", "VERSION", "RENEWED", "HEALTH"]
    return format_table(headers, [row.cells() for row in found])


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``python -m services.runtime.ops`` entry point."""
    sys.exit(asyncio.run(run(argv)))


if __name__ == "__main__":
    main()
