"""Registry SIGKILL and restart under load: caches carry calls, all come back, no stampede.

A real registry, three user instances, a product service (TTL 3 s, so one
heartbeat interval is 1 s) and, for statistics, twelve more registration
agents in the test process. Under steady load the registry is SIGKILLed; while
it is down one user instance dies too (the truth changes behind the
watchers' backs); then the registry restarts empty on the same port.

* Calls continue from the client caches: not one idempotent call fails.
* Every surviving instance is registered again within 2 heartbeat intervals
  of the restart, without anyone's help.
* The re-registrations are spread over the interval (jitter), not a burst.
* Watchers resync and converge to the truth: the client runtime drops the
  dead instance, and a raw Watch resuming from a revision of the old run gets
  a RESYNC snapshot of exactly the live instances (never a silent gap).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import grpc.aio
import pytest

from harness import Launcher
from services.product.client import ProductClient
from services.runtime import RegistrationAgent, RegistryConfig
from services.user.client import UserClient
from switchboard.registry.v1 import instance_pb2
from switchboard.registry.v1 import registry_service_pb2 as rs
from switchboard.registry.v1 import registry_service_pb2_grpc as rs_grpc
from tests._support import LoopLag
from tests.reliability._support.load import Load
from tests.reliability._support.stack import start_stack
from tests.reliability._support.waits import eventually

pytestmark = pytest.mark.e2e

TTL_S = 3.0
INTERVAL_S = TTL_S / 3
AGENTS = 12
SLACK_S = 0.1  # the restart is seen up to one 20 ms poll late; scheduling


async def registered(address: str) -> dict[str, list[instance_pb2.Instance]]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = rs_grpc.RegistryServiceStub(channel)
        found = {}
        for service in ("user", "product", "jitter"):
            answer = await stub.Resolve(rs.ResolveRequest(service=service), timeout=2)
            found[service] = list(answer.instances)
        return found


async def revision_of(address: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = rs_grpc.RegistryServiceStub(channel)
        answer = await stub.Resolve(rs.ResolveRequest(service="user"), timeout=2)
        return answer.revision


async def resync_from(address: str, revision: int) -> set[str]:
    """The addresses in the first message of a Watch resuming from ``revision``: a RESYNC."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = rs_grpc.RegistryServiceStub(channel)
        watch = stub.Watch(rs.WatchRequest(service="user", start_revision=revision))
        first = await asyncio.wait_for(watch.read(), 5)
        watch.cancel()
    assert isinstance(first, rs.WatchResponse) and first.HasField("snapshot"), first
    assert first.snapshot.reason == instance_pb2.SNAPSHOT_REASON_RESYNC
    return {i.address for i in first.snapshot.instances}


async def test_registry_restart_under_load(launcher: Launcher, tmp_path: Path) -> None:
    platform = await start_stack(launcher, tmp_path, users=3, product=True, ttl_s=TTL_S)
    registry = platform.registry
    config = RegistryConfig((registry.address,), ttl_s=TTL_S)
    # Addresses nobody dials (RFC 5737 TEST-NET-1): only the leases matter here.
    agents = [
        RegistrationAgent("jitter", config, advertise_host=f"192.0.2.{i + 1}", instance_id=f"j-{i}")
        for i in range(AGENTS)
    ]
    survivors = {p.address for p in platform.users[:2]}
    doomed = platform.users[2]
    try:
        for agent in agents:
            await agent.started(1)
        async with platform.client() as client:
            users = await UserClient.connect(client)
            load = Load(users, await ProductClient.connect(client), workers=4)
            await load.start()
            await load.wait_for_calls(100, 10.0)
            old_revision = await revision_of(registry.address)

            registry.kill()
            doomed.kill()  # the truth changes while nobody is watching
            await registry.wait_exit()
            await load.wait_for_calls(150, 15.0)  # served from the caches meanwhile

            await registry.restart()
            restarted_ns = time.time_ns()

            async def all_back() -> bool:
                found = await registered(registry.address)
                return (
                    {i.address for i in found["user"]} == survivors
                    and len(found["product"]) == 1
                    and len(found["jitter"]) == AGENTS
                )

            # The agents run on this event loop: how late it ran is added to their bound.
            async with LoopLag() as lag:
                await eventually(all_back, 2 * INTERVAL_S + 5.0, "every live instance registered")
            await eventually(
                lambda: set(users.conn.addresses) == survivors, 5.0, "the client drops the dead"
            )
            assert await resync_from(registry.address, old_revision) == survivors
            await load.wait_for_calls(100, 10.0)
            stats = await load.stop()
        found = await registered(registry.address)
    finally:
        for agent in agents:
            await agent.stopping()

    delays = sorted(
        (i.register_time.ToNanoseconds() - restarted_ns) / 1e9
        for service in found.values()
        for i in service
    )
    assert stats.failed_total == 0, stats.failures[:10]
    # No stampede: the re-registrations spread over the interval instead of landing together.
    assert statistics.pstdev(delays) >= 0.15 * INTERVAL_S, delays
    busiest = max(sum(1 for d in delays if t <= d < t + 0.1) for t in delays)
    assert busiest <= len(delays) // 2, f"{busiest} of {len(delays)} within 100 ms: {delays}"
    assert delays[-1] <= 2 * INTERVAL_S + SLACK_S + lag.worst, (
        f"re-registered up to {delays[-1]:.2f} s after the restart (interval {INTERVAL_S} s, "
        f"loop lag {lag.worst:.2f} s); all delays: {[round(d, 2) for d in delays]}"
    )
