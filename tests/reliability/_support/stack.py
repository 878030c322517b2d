"""A stack of real processes started one by one (not by the supervisor, see
``harness.running_platform`` for that): a registry, user instances and a product
service, each reachable for fault injection.

Every user instance shares one data dir (SQLite WAL serves several processes),
so any instance can answer for any user, as in a real deployment.

Example::

    async with Launcher(tmp_path) as launch:
        platform = await start_stack(launch, tmp_path, users=3, product=True)
        async with platform.client() as client:
            users = await UserClient.connect(client)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from harness import Launcher, Process
from services.runtime import Client, ClientConfig, RegistryConfig, RetrySettings
from switchboard.registry.v1 import registry_service_pb2 as rs
from switchboard.registry.v1 import registry_service_pb2_grpc as rs_grpc
from tests.reliability._support.waits import eventually

__all__ = ["Stack", "health_status", "resolve", "start_stack"]

WAIT_S = 10.0


@dataclass
class Stack:
    """Started processes and where their data lives."""

    launcher: Launcher
    data: Path
    registry: Process
    ttl_s: float
    users: list[Process] = field(default_factory=list)
    product: Process | None = None

    def service_args(self, name: str) -> tuple[str, ...]:
        """Flags of a service instance: its data dir and the registry to register with."""
        return (
            *("--data-dir", str(self.data / name)),
            *("--registry", self.registry.address),
            *("--registry-ttl-s", f"{self.ttl_s:g}"),
            *("--grace-s", "5"),
        )

    async def add_user(self) -> Process:
        """Start one more user instance (same data dir) and wait until it is registered."""
        proc = await self.launcher.start("services.user", *self.service_args("user"))
        self.users.append(proc)
        await wait_registered(self.registry.address, "user", proc.address)
        return proc

    def client(self, *, timeout_s: float = 5.0, **options: object) -> Client:
        """A client runtime that finds services through this platform's registry."""
        config = ClientConfig(
            registry=RegistryConfig((self.registry.address,)),
            default_timeout_s=timeout_s,
            retry=RetrySettings(max_attempts=6),
            **options,  # type: ignore[arg-type]
        )
        return Client(config)


async def start_stack(
    launcher: Launcher,
    data: Path,
    *,
    users: int = 1,
    product: bool = False,
    ttl_s: float = 3.0,
    registry_args: tuple[str, ...] = (),
) -> Stack:
    """Start a registry, ``users`` user instances and (optionally) a product service."""
    registry = await launcher.start("registry", *registry_args)
    platform = Stack(launcher, data, registry, ttl_s)
    for _ in range(users):
        await platform.add_user()
    if product:
        platform.product = await launcher.start(
            "services.product", *platform.service_args("product")
        )
        await wait_registered(registry.address, "product", platform.product.address)
    return platform


async def resolve(registry: str, service: str) -> set[str]:
    """The addresses the registry lists for ``service`` now."""
    async with grpc.aio.insecure_channel(registry) as channel:
        stub = rs_grpc.RegistryServiceStub(channel)
        answer = await stub.Resolve(rs.ResolveRequest(service=service), timeout=WAIT_S)
    return {instance.address for instance in answer.instances}


async def wait_registered(registry: str, service: str, address: str) -> float:
    """Wait until ``address`` is a live instance of ``service``; return how long it took."""

    async def listed() -> bool:
        return address in await resolve(registry, service)

    return await eventually(listed, WAIT_S, f"{service} at {address} registered")


async def health_status(address: str, service: str = "") -> int:
    """The grpc.health.v1 status of ``service`` at ``address``."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=WAIT_S)
    status: int = answer.status
    return status
