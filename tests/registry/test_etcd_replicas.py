"""End to end: two ``python -m registry --etcd`` replicas on the session's 3-member etcd
cluster, clients on a round_robin channel over both, and faults: a lease moving between
replicas, a watch resuming on the other replica, SIGKILL of the etcd leader, SIGKILL of a
replica, and the loss of etcd's quorum.

Clients here behave like the platform's: idempotent calls are tried again on UNAVAILABLE
within one deadline (:func:`call`), a broken Watch reopens from its last revision, a
broken KeepAlive stream reopens with the same lease. Every load loop is bounded in count
and time; the measured failover times are printed (``-s``) for the README.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import grpc.aio
import pytest
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from harness import ELECTION_TIMEOUT_S, EtcdCluster, Process, StartProcess
from switchboard.registry.v1 import instance_pb2 as pb
from switchboard.registry.v1 import registry_service_pb2 as rs
from switchboard.registry.v1 import registry_service_pb2_grpc as rs_grpc

pytestmark = pytest.mark.e2e

Reply = TypeVar("Reply")
WAIT = 5.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def cluster(etcd_cluster: EtcdCluster) -> Iterator[EtcdCluster]:
    """The session's cluster, whole again (every member up, a leader) after the test."""
    yield etcd_cluster
    for member in etcd_cluster.members:
        if member.process is None:
            etcd_cluster.restart(member)
    etcd_cluster.wait_ready()


@dataclass
class Replicas:
    """Two registry processes on one etcd prefix and a round_robin channel over both."""

    a: Process
    b: Process
    channel: grpc.aio.Channel

    @property
    def stub(self) -> rs_grpc.RegistryServiceAsyncStub:
        return rs_grpc.RegistryServiceStub(self.channel)


@pytest.fixture
async def replicas(
    cluster: EtcdCluster, start_registry_process: StartProcess
) -> AsyncIterator[Replicas]:
    prefix = f"/test/{secrets.token_hex(8)}/"
    args = ("--etcd", cluster.endpoints, "--etcd-prefix", prefix, "--etcd-timeout", "2")
    a = await start_registry_process(*args)
    b = await start_registry_process(*args)
    target = f"ipv4:{a.address},{b.address}"
    options = [
        ("grpc.lb_policy_name", "round_robin"),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1_000),
    ]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        yield Replicas(a, b, channel)


# --- client behaviour ---------------------------------------------------------------------


async def call(
    method: Callable[..., Awaitable[Reply]], request: Any, budget: float = WAIT
) -> Reply:
    """One idempotent call, tried again on UNAVAILABLE while ``budget`` lasts."""
    end = time.monotonic() + budget
    for _ in range(1_000):
        try:
            return await method(request, timeout=max(end - time.monotonic(), 0.01))
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() + 0.05 >= end:
                raise
            await asyncio.sleep(0.05)
    raise AssertionError("unreachable: the budget ends the loop first")


def register_request(instance_id: str, ttl_s: float, service: str = "user") -> rs.RegisterRequest:
    ttl = duration_pb2.Duration()
    ttl.FromNanoseconds(round(ttl_s * 1e9))
    instance = pb.Instance(service=service, instance_id=instance_id, address="127.0.0.1:5000")
    return rs.RegisterRequest(instance=instance, ttl=ttl)


@dataclass
class Tracker:
    """A watcher that keeps the instance set, reopening from its revision when cut off."""

    stub: rs_grpc.RegistryServiceAsyncStub
    service: str = "user"
    instances: set[str] = field(default_factory=set)
    revision: int = 0
    resyncs: int = 0
    reopened: int = 0

    async def run(self) -> None:
        for _ in range(1_000):
            call = self.stub.Watch(
                rs.WatchRequest(service=self.service, start_revision=self.revision)
            )
            try:
                async for message in call:
                    self._apply(message)
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
            self.reopened += 1
            await asyncio.sleep(0.05)

    def _apply(self, message: rs.WatchResponse) -> None:
        if message.HasField("snapshot"):
            snapshot = message.snapshot
            self.instances = {i.instance_id for i in snapshot.instances}
            self.resyncs += snapshot.reason == pb.SNAPSHOT_REASON_RESYNC
            self.revision = snapshot.revision
            return
        event = message.event
        assert event.revision > self.revision, "an event from the past: a replayed revision"
        if event.type in (pb.INSTANCE_EVENT_TYPE_ADDED, pb.INSTANCE_EVENT_TYPE_UPDATED):
            self.instances.add(event.instance.instance_id)
        else:
            self.instances.discard(event.instance.instance_id)
        self.revision = event.revision


@dataclass
class Heartbeater:
    """Keeps one instance's lease alive with unary Heartbeats (or a KeepAlive stream)."""

    stub: rs_grpc.RegistryServiceAsyncStub
    instance_id: str
    ttl_s: float = 3.0
    stream: bool = False
    lease_id: str = ""
    evicted: int = 0
    failed: int = 0
    renewed: int = 0

    async def register(self) -> None:
        reply = await call(self.stub.Register, register_request(self.instance_id, self.ttl_s))
        self.lease_id = reply.lease_id

    async def run(self, period: float = 0.3) -> None:
        if self.stream:
            await self._keepalive(period)
            return
        for _ in range(10_000):
            await self._beat()
            await asyncio.sleep(period)

    async def _beat(self) -> None:
        request = rs.HeartbeatRequest(lease_id=self.lease_id)
        try:
            await call(self.stub.Heartbeat, request, budget=self.ttl_s / 2)
            self.renewed += 1
        except grpc.aio.AioRpcError as err:
            self._count(err)

    def _count(self, err: grpc.aio.AioRpcError) -> None:
        if err.code() == grpc.StatusCode.NOT_FOUND:
            self.evicted += 1
        else:
            self.failed += 1

    async def _keepalive(self, period: float) -> None:
        for _ in range(1_000):
            stream = self.stub.KeepAlive()
            try:
                for _ in range(10_000):
                    await stream.write(rs.KeepAliveRequest(lease_id=self.lease_id))
                    # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a
                    # cancel that lands as the read completes, and Load.stop would wait
                    async with asyncio.timeout(self.ttl_s / 2):
                        await stream.read()
                    self.renewed += 1
                    await asyncio.sleep(period)
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE:
                    self._count(err)
            except (TimeoutError, asyncio.InvalidStateError):
                pass
            stream.cancel()
            await asyncio.sleep(0.05)


class Load:
    """Background tasks, all cancelled by :meth:`stop`."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            await work

        self._tasks.append(asyncio.ensure_future(run()))

    async def stop(self) -> None:
        """Cancel every task and wait (bounded) for each to end; re-raise a task's failure."""
        pending = {task for task in self._tasks if not task.done()}
        for _ in range(50):  # a task that absorbed a cancel is cancelled again
            if not pending:
                break
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.2)
        assert not pending, f"{len(pending)} load task(s) ignored cancellation for 10 s"
        for task in self._tasks:
            failure = None if task.cancelled() else task.exception()
            if failure is not None:
                raise failure  # a load task failed: that is the test failing


async def resolved_ids(stub: rs_grpc.RegistryServiceAsyncStub) -> set[str]:
    reply = await call(stub.Resolve, rs.ResolveRequest(service="user"))
    return {i.instance_id for i in reply.instances}


async def converge(
    trackers: list[Tracker], stub: rs_grpc.RegistryServiceAsyncStub, limit_s: float = 15.0
) -> set[str]:
    """Wait (bounded) until every tracker holds exactly the resolved instance set."""
    truth: set[str] = set()
    end = time.monotonic() + limit_s
    for _ in range(1_000):
        truth = await resolved_ids(stub)
        if all(t.instances == truth for t in trackers) or time.monotonic() > end:
            break
        await asyncio.sleep(0.1)
    assert all(t.instances == truth for t in trackers), (
        f"watchers {[(t.instances, t.revision, t.reopened) for t in trackers]} "
        f"!= resolved {truth} within {limit_s}s"
    )
    return truth


async def health(process: Process) -> int:
    async with grpc.aio.insecure_channel(process.address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=2.0
        )
        return int(reply.status)


async def wait_health(process: Process, status: int, limit_s: float) -> float:
    """Wait (bounded) for a health status; return how long it took."""
    started = time.monotonic()
    for _ in range(int(limit_s / 0.1)):
        if await health(process) == status:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"health never became {status} within {limit_s}s")


async def settle(seconds: float) -> None:
    """Let the load run for a while (the test's timeline, not a wait for an event)."""
    await asyncio.sleep(seconds)


# --- tests --------------------------------------------------------------------------------


async def test_a_lease_taken_on_one_replica_is_served_by_the_other(replicas: Replicas) -> None:
    async with (
        grpc.aio.insecure_channel(replicas.a.address) as ch_a,
        grpc.aio.insecure_channel(replicas.b.address) as ch_b,
    ):
        a, b = rs_grpc.RegistryServiceStub(ch_a), rs_grpc.RegistryServiceStub(ch_b)
        lease = await a.Register(register_request("u1", 5), timeout=WAIT)
        beat = await b.Heartbeat(rs.HeartbeatRequest(lease_id=lease.lease_id), timeout=WAIT)
        assert beat.ttl.seconds == 5
        stream = b.KeepAlive()
        await stream.write(rs.KeepAliveRequest(lease_id=lease.lease_id))
        answer = await asyncio.wait_for(stream.read(), WAIT)
        assert isinstance(answer, rs.KeepAliveResponse) and answer.lease_id == lease.lease_id
        stream.cancel()
        resolved = await b.Resolve(rs.ResolveRequest(service="user"), timeout=WAIT)
        assert [i.instance_id for i in resolved.instances] == ["u1"]
        assert resolved.revision >= lease.revision
        removed = await b.Deregister(rs.DeregisterRequest(lease_id=lease.lease_id), timeout=WAIT)
        assert removed.revision > lease.revision
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await a.Heartbeat(rs.HeartbeatRequest(lease_id=lease.lease_id), timeout=WAIT)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_watch_resumes_on_the_other_replica_with_no_gap(replicas: Replicas) -> None:
    async with (
        grpc.aio.insecure_channel(replicas.a.address) as ch_a,
        grpc.aio.insecure_channel(replicas.b.address) as ch_b,
    ):
        a, b = rs_grpc.RegistryServiceStub(ch_a), rs_grpc.RegistryServiceStub(ch_b)
        watch = a.Watch(rs.WatchRequest(service="user"))
        tracker = Tracker(a)
        for n in range(4):
            if n:
                await b.Register(register_request(f"i{n}", 30), timeout=WAIT)
            message = await asyncio.wait_for(watch.read(), WAIT)
            assert isinstance(message, rs.WatchResponse)
            tracker._apply(message)
        replicas.a.signal(signal.SIGKILL)  # the watcher's replica dies
        await replicas.a.wait_exit()
        missed = [await b.Register(register_request(f"m{n}", 30), timeout=WAIT) for n in range(4)]
        resumed = b.Watch(rs.WatchRequest(service="user", start_revision=tracker.revision))
        seen: list[rs.WatchResponse] = []
        for _ in range(4):
            message = await asyncio.wait_for(resumed.read(), WAIT)
            assert isinstance(message, rs.WatchResponse)
            seen.append(message)
        assert all(m.HasField("event") for m in seen), "a snapshot instead of the missed events"
        assert [m.event.revision for m in seen] == [r.revision for r in missed]
        for message in seen:
            tracker._apply(message)
        assert tracker.instances == await resolved_ids(b) and tracker.resyncs == 0
        resumed.cancel()


async def test_sigkill_of_the_etcd_leader_under_load(
    replicas: Replicas, cluster: EtcdCluster
) -> None:
    stub, load = replicas.stub, Load()
    beaters = [Heartbeater(stub, f"beat{n}", stream=n % 2 == 1) for n in range(6)]
    for beater in beaters:
        await beater.register()
    trackers = [Tracker(stub) for _ in range(3)]
    acknowledged: list[tuple[float, float, str]] = []  # (started, answered, instance id)

    async def registrar() -> None:
        for n in range(10_000):
            started = time.monotonic()
            await call(stub.Register, register_request(f"reg{n}", 60), budget=10.0)
            acknowledged.append((started, time.monotonic(), f"reg{n}"))
            await asyncio.sleep(0.02)

    async def resolver() -> None:
        for _ in range(10_000):
            await call(stub.Resolve, rs.ResolveRequest(service="user"), budget=10.0)
            await asyncio.sleep(0.02)

    for work in [b.run() for b in beaters] + [t.run() for t in trackers]:
        load.spawn(work)
    writers = Load()
    writers.spawn(registrar())
    writers.spawn(resolver())
    await settle(1.0)
    leader = cluster.leader()
    killed_at = time.monotonic()
    cluster.kill(leader)
    await settle(4.0)
    await writers.stop()
    truth = await converge(trackers, stub)
    await load.stop()
    resumed = min(answered for started, answered, _ in acknowledged if started > killed_at)
    print(f"\netcd leader failover: writes resumed {resumed - killed_at:.2f}s after SIGKILL")
    assert resumed - killed_at <= ELECTION_TIMEOUT_S + 2.0
    assert {i for _, _, i in acknowledged} <= truth, "an acknowledged registration was lost"
    assert sum(b.evicted for b in beaters) == 0


async def test_sigkill_of_a_registry_replica_under_client_load(replicas: Replicas) -> None:
    stub, load = replicas.stub, Load()
    beaters = [Heartbeater(stub, f"beat{n}", stream=n % 2 == 1) for n in range(8)]
    for beater in beaters:
        await beater.register()
    trackers = [Tracker(stub) for _ in range(4)]
    slowest = [0.0]

    async def resolver() -> None:
        for _ in range(10_000):
            started = time.monotonic()
            await call(stub.Resolve, rs.ResolveRequest(service="user"), budget=WAIT)
            slowest[0] = max(slowest[0], time.monotonic() - started)
            await asyncio.sleep(0.01)

    for work in [b.run() for b in beaters] + [t.run() for t in trackers] + [resolver()]:
        load.spawn(work)
    await settle(1.0)
    before = [t.reopened for t in trackers]
    replicas.a.signal(signal.SIGKILL)
    await replicas.a.wait_exit()
    await settle(3.0)
    late = Heartbeater(stub, "late")
    await late.register()  # writes go on through the survivor
    truth = await converge(trackers, stub)
    await load.stop()
    print(f"\nregistry replica failover: slowest Resolve across the SIGKILL {slowest[0]:.3f}s")
    assert {b.instance_id for b in beaters} | {"late"} == truth
    assert sum(b.evicted + b.failed for b in beaters) == 0, "a heartbeat failed or was evicted"
    assert all(t.resyncs == 0 for t in trackers), "a watcher had to resync"
    moved = sum(t.reopened for t in trackers) - sum(before)
    assert moved > 0, "no watch was on the killed replica (round_robin spreads them)"


async def test_quorum_loss_fails_fast_and_recovers_without_evictions(
    replicas: Replicas, cluster: EtcdCluster
) -> None:
    stub, load = replicas.stub, Load()
    beaters = [Heartbeater(stub, f"beat{n}", ttl_s=3.0, stream=n % 2 == 1) for n in range(4)]
    for beater in beaters:
        await beater.register()
    trackers = [Tracker(stub) for _ in range(2)]
    for work in [b.run() for b in beaters] + [t.run() for t in trackers]:
        load.spawn(work)
    await settle(0.5)
    down = cluster.members[:2]
    for member in down:
        cluster.kill(member)
    lost_at = time.monotonic()
    not_serving_after = await wait_health(replicas.a, NOT_SERVING, limit_s=8.0)
    slowest = 0.0
    for _ in range(20):  # calls fail fast, inside their deadlines, for the whole outage
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Resolve(rs.ResolveRequest(service="user"), timeout=1.0)
        # UNAVAILABLE (not DEADLINE_EXCEEDED) means the answer beat the caller's deadline
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        slowest = max(slowest, time.monotonic() - started)
        if time.monotonic() - lost_at > 10.0:
            break
        await settle(0.4)
    for member in down:
        cluster.restart(member)
    back = time.monotonic()
    serving_after = await wait_health(replicas.a, SERVING, limit_s=15.0)
    await settle(1.0)  # a few renewals on the recovered cluster
    truth = await converge(trackers, stub)
    await load.stop()
    print(
        f"\nquorum loss: Resolve(timeout 1 s) failed UNAVAILABLE in at most {slowest:.2f}s, "
        f"NOT_SERVING after {not_serving_after:.1f}s, "
        f"SERVING {serving_after:.1f}s after quorum returned "
        f"({time.monotonic() - back:.1f}s to the end)"
    )
    assert sum(b.evicted for b in beaters) == 0, "an instance that kept renewing was evicted"
    assert truth == {b.instance_id for b in beaters}
