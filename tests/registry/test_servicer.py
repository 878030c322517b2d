"""RegistryService over gRPC, on in-process servers from the production factory."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from registry import RegistrySettings, StoreLimits
from services.runtime import errors as e
from switchboard.registry.v1 import instance_pb2 as pb
from switchboard.registry.v1 import registry_service_pb2 as rs
from tests._support import LoopLag, failure
from tests.registry._support import (
    WAIT,
    MakeRegistry,
    Registry,
    eventually,
    read,
    register_request,
    state,
)

ADDED = pb.INSTANCE_EVENT_TYPE_ADDED
UPDATED = pb.INSTANCE_EVENT_TYPE_UPDATED
REMOVED = pb.INSTANCE_EVENT_TYPE_REMOVED
EXPIRED = pb.INSTANCE_EVENT_TYPE_EXPIRED


async def test_register_resolve_deregister(registry: Registry) -> None:
    stub = registry.stub
    first = await stub.Register(register_request(instance_id="b", address="[::1]:7001"))
    second = await stub.Register(register_request(instance_id="a", metadata={"zone": "z1"}))
    assert first.ttl.seconds == 10 and len(first.lease_id) >= 22
    assert second.revision == first.revision + 1
    resolved = await stub.Resolve(rs.ResolveRequest(service="user"))
    assert [i.instance_id for i in resolved.instances] == ["a", "b"]
    assert resolved.revision == second.revision
    assert resolved.instances[0].metadata["zone"] == "z1"
    assert resolved.instances[1].register_time.seconds > 0
    removed = await stub.Deregister(rs.DeregisterRequest(lease_id=first.lease_id))
    assert removed.revision == second.revision + 1
    resolved = await stub.Resolve(rs.ResolveRequest(service="user"))
    assert [i.instance_id for i in resolved.instances] == ["a"]
    empty = await stub.Resolve(rs.ResolveRequest(service="nobody"))
    revoked = 1 if registry.on_etcd else 0  # etcd: revoking the lease is one more revision
    assert list(empty.instances) == [] and empty.revision == removed.revision + revoked


async def test_list_services_counts(registry: Registry) -> None:
    stub = registry.stub
    for service, instance_id in [("user", "1"), ("product", "1"), ("user", "2")]:
        await stub.Register(register_request(service=service, instance_id=instance_id))
    listed = await stub.ListServices(rs.ListServicesRequest())
    assert [(s.name, s.instance_count) for s in listed.services] == [("product", 1), ("user", 2)]


async def test_heartbeat_renews_and_reports_the_ttl(registry: Registry) -> None:
    lease = await registry.stub.Register(register_request(ttl_s=2.5))
    granted = registry.granted(2.5)  # etcd grants whole seconds
    assert lease.ttl.ToNanoseconds() == granted * 1e9
    beat = await registry.stub.Heartbeat(rs.HeartbeatRequest(lease_id=lease.lease_id))
    assert beat.ttl.ToNanoseconds() == granted * 1e9


async def test_an_unrenewed_instance_expires_and_watchers_hear_it(registry: Registry) -> None:
    stub = registry.stub
    watch = stub.Watch(rs.WatchRequest(service="user"))
    assert (await read(watch)).snapshot.reason == pb.SNAPSHOT_REASON_INITIAL
    async with LoopLag() as lag:
        started = time.monotonic()
        await stub.Register(register_request(ttl_s=1))
        assert (await read(watch)).event.type == ADDED
        expired = await read(watch)
        elapsed = time.monotonic() - started
    assert expired.event.type == EXPIRED and expired.event.instance.instance_id == "u1"
    # Within TTL + 1 s (+ how late this loop ran); etcd checks leases every 500 ms and
    # revokes through Raft on a cluster sharing two cores with the suite: 1 s more there.
    allowed = 2.0 + lag.worst + (1.0 if registry.on_etcd else 0.0)
    assert 0.9 <= elapsed < allowed, f"expired after {elapsed:.2f} s"
    assert list((await stub.Resolve(rs.ResolveRequest(service="user"))).instances) == []
    watch.cancel()


async def test_watch_snapshot_then_changes_then_resume(registry: Registry) -> None:
    stub = registry.stub
    await stub.Register(register_request(instance_id="a"))
    watch = stub.Watch(rs.WatchRequest(service="user"))
    snapshot = (await read(watch)).snapshot
    assert [i.instance_id for i in snapshot.instances] == ["a"]
    await stub.Register(register_request(service="other"))
    lease_b = await stub.Register(register_request(instance_id="b"))
    await stub.Register(register_request(instance_id="a", address="127.0.0.1:6000"))
    await stub.Deregister(rs.DeregisterRequest(lease_id=lease_b.lease_id))
    events = [(await read(watch)).event for _ in range(3)]
    assert [(ev.type, ev.instance.instance_id) for ev in events] == [
        (ADDED, "b"),
        (UPDATED, "a"),
        (REMOVED, "b"),
    ]
    assert [ev.revision for ev in events] == sorted({ev.revision for ev in events})
    assert events[0].revision > snapshot.revision
    watch.cancel()
    resumed = stub.Watch(rs.WatchRequest(service="user", start_revision=events[0].revision))
    replayed = [(await read(resumed)).event for _ in range(2)]
    assert [ev.revision for ev in replayed] == [ev.revision for ev in events[1:]]
    resumed.cancel()


async def test_too_old_a_revision_gets_a_resync_snapshot(make_registry: MakeRegistry) -> None:
    registry = await make_registry(RegistrySettings(limits=StoreLimits(history=3)))
    stub = registry.stub
    first = await stub.Register(register_request(instance_id="i0"))
    for n in range(1, 6):
        await stub.Register(register_request(instance_id=f"i{n}"))
    await registry.forget_history(first.revision + 3)
    for start in (first.revision, first.revision + 10**9):  # too old; from "another run"
        watch = stub.Watch(rs.WatchRequest(service="user", start_revision=start))
        snapshot = (await read(watch)).snapshot
        assert snapshot.reason == pb.SNAPSHOT_REASON_RESYNC
        assert len(snapshot.instances) == 6 and snapshot.revision == first.revision + 5
        watch.cancel()


async def test_a_restarted_instance_replaces_itself_and_the_stale_lease_is_gone(
    registry: Registry,
) -> None:
    stub = registry.stub
    old = await stub.Register(register_request(address="127.0.0.1:5000"))
    new = await stub.Register(register_request(address="127.0.0.1:5001"))
    resolved = await stub.Resolve(rs.ResolveRequest(service="user"))
    assert [i.address for i in resolved.instances] == ["127.0.0.1:5001"]
    stale = await failure(stub.Heartbeat(rs.HeartbeatRequest(lease_id=old.lease_id)))
    assert isinstance(stale, e.NotFound) and stale.reason == "LEASE_NOT_FOUND"
    assert old.lease_id not in stale.message
    assert isinstance(
        await failure(stub.Deregister(rs.DeregisterRequest(lease_id=old.lease_id))), e.NotFound
    )
    await stub.Heartbeat(rs.HeartbeatRequest(lease_id=new.lease_id))
    await stub.Deregister(rs.DeregisterRequest(lease_id=new.lease_id))
    revived = await failure(stub.Heartbeat(rs.HeartbeatRequest(lease_id=new.lease_id)))
    assert isinstance(revived, e.NotFound)  # a deregistered instance never comes back


async def test_keepalive_renews_until_a_lease_is_unknown(registry: Registry) -> None:
    stub = registry.stub
    lease = await stub.Register(register_request(ttl_s=1))
    other = await stub.Register(register_request(instance_id="u2", ttl_s=1))
    stream = stub.KeepAlive()
    deadline = time.monotonic() + 1.6  # outlive the 1 s TTL by renewing
    rounds = 0
    while time.monotonic() < deadline and rounds < 100:
        for lease_id in (lease.lease_id, other.lease_id):
            await stream.write(rs.KeepAliveRequest(lease_id=lease_id))
            answer = await asyncio.wait_for(stream.read(), WAIT)
            assert isinstance(answer, rs.KeepAliveResponse)
            assert answer.lease_id == lease_id and answer.ttl.seconds == 1
        rounds += 1
        await asyncio.sleep(0.2)  # the renewal period itself, not a wait for an event
    resolved = await stub.Resolve(rs.ResolveRequest(service="user"))
    assert len(resolved.instances) == 2
    await stream.write(rs.KeepAliveRequest(lease_id="no-such-lease"))
    error = await failure(stream.read())
    assert isinstance(error, e.NotFound)


async def test_keepalive_rejects_a_malformed_lease_id(registry: Registry) -> None:
    stream = registry.stub.KeepAlive()
    await stream.write(rs.KeepAliveRequest(lease_id="not a lease!"))
    error = await failure(stream.read())
    assert isinstance(error, e.InvalidArgument)
    assert [v.field for v in error.violations] == ["lease_id"]


BAD_REQUESTS: list[tuple[str, str, Any, list[str]]] = [
    ("Register", "no instance", rs.RegisterRequest(), ["instance"]),
    ("Register", "service", register_request(service="User"), ["instance.service"]),
    ("Register", "empty id", register_request(instance_id=""), ["instance.instance_id"]),
    ("Register", "id charset", register_request(instance_id="a/b"), ["instance.instance_id"]),
    ("Register", "long id", register_request(instance_id="x" * 129), ["instance.instance_id"]),
    ("Register", "no port", register_request(address="localhost"), ["instance.address"]),
    ("Register", "port 0", register_request(address="h:0"), ["instance.address"]),
    ("Register", "port big", register_request(address="h:65536"), ["instance.address"]),
    ("Register", "bare v6", register_request(address="::1:80"), ["instance.address"]),
    ("Register", "version", register_request(version="v" * 65), ["instance.version"]),
    (
        "Register",
        "metadata count",
        register_request(metadata={f"k{i}": "v" for i in range(65)}),
        ["instance.metadata"],
    ),
    (
        "Register",
        "metadata value",
        register_request(metadata={"zone": "x" * 1025}),
        ['instance.metadata["zone"]'],
    ),
    ("Register", "ttl low", register_request(ttl_s=0.5), ["ttl"]),
    ("Register", "ttl high", register_request(ttl_s=301), ["ttl"]),
    ("Register", "ttl negative", register_request(ttl_s=-1), ["ttl"]),
    (
        "Register",
        "everything",
        register_request(service="", instance_id="", address="", version="v" * 99, ttl_s=-1),
        [
            "instance.service",
            "instance.instance_id",
            "instance.address",
            "instance.version",
            "ttl",
        ],
    ),
    ("Heartbeat", "empty lease", rs.HeartbeatRequest(), ["lease_id"]),
    ("Heartbeat", "bad lease", rs.HeartbeatRequest(lease_id="a b"), ["lease_id"]),
    ("Deregister", "long lease", rs.DeregisterRequest(lease_id="a" * 129), ["lease_id"]),
    ("Resolve", "no service", rs.ResolveRequest(), ["service"]),
    ("Resolve", "bad service", rs.ResolveRequest(service="-x"), ["service"]),
]


@pytest.mark.parametrize(
    ("method", "request_message", "fields"),
    [pytest.param(m, r, f, id=f"{m}-{name}") for m, name, r, f in BAD_REQUESTS],
)
async def test_bad_input_is_invalid_argument_and_changes_nothing(
    registry: Registry, method: str, request_message: Any, fields: list[str]
) -> None:
    stub = registry.stub
    await stub.Register(register_request(instance_id="existing"))
    before = await state(stub)
    error = await failure(getattr(stub, method)(request_message))
    assert isinstance(error, e.InvalidArgument)
    assert [v.field for v in error.violations] == fields
    assert await state(stub) == before


@pytest.mark.parametrize(
    ("request_message", "fields"),
    [
        (rs.WatchRequest(service="user", start_revision=-1), ["start_revision"]),
        (rs.WatchRequest(service="Bad", start_revision=-5), ["service", "start_revision"]),
    ],
)
async def test_bad_watch_is_invalid_argument(
    registry: Registry, request_message: rs.WatchRequest, fields: list[str]
) -> None:
    error = await failure(registry.stub.Watch(request_message).read())
    assert isinstance(error, e.InvalidArgument)
    assert [v.field for v in error.violations] == fields
    assert registry.store.watcher_count == 0


async def test_instance_caps_are_resource_exhausted(make_registry: MakeRegistry) -> None:
    limits = StoreLimits(max_instances=3, max_instances_per_service=2)
    registry = await make_registry(RegistrySettings(limits=limits))
    stub = registry.stub
    await stub.Register(register_request(instance_id="1"))
    await stub.Register(register_request(instance_id="2"))
    before = await state(stub)
    error = await failure(stub.Register(register_request(instance_id="3")))
    assert isinstance(error, e.ResourceExhausted) and error.reason == "SERVICE_INSTANCE_LIMIT"
    assert await state(stub) == before
    await stub.Register(register_request(service="other"))
    error = await failure(stub.Register(register_request(service="third")))
    assert isinstance(error, e.ResourceExhausted) and error.reason == "INSTANCE_LIMIT"


async def test_watch_cap_is_resource_exhausted(make_registry: MakeRegistry) -> None:
    registry = await make_registry(RegistrySettings(limits=StoreLimits(max_watchers=2)))
    watches = [registry.stub.Watch(rs.WatchRequest(service="user")) for _ in range(2)]
    for watch in watches:
        await read(watch)
    error = await failure(registry.stub.Watch(rs.WatchRequest(service="user")).read())
    assert isinstance(error, e.ResourceExhausted) and error.reason == "WATCH_LIMIT"
    watches[0].cancel()
    await eventually(lambda: registry.store.watcher_count == 1)  # noticed asynchronously
    replacement = registry.stub.Watch(rs.WatchRequest(service="user"))
    assert (await read(replacement)).HasField("snapshot")
    for watch in (watches[1], replacement):
        watch.cancel()


async def test_many_watchers_each_hear_one_change(registry: Registry) -> None:
    watches = [registry.stub.Watch(rs.WatchRequest(service="user")) for _ in range(200)]
    for watch in watches:
        await read(watch)
    lease = await registry.stub.Register(register_request())
    events = [(await read(watch)).event for watch in watches]
    assert {ev.revision for ev in events} == {lease.revision}
    for watch in watches:
        watch.cancel()


async def test_closing_the_store_ends_watches_with_unavailable(registry: Registry) -> None:
    watch = registry.stub.Watch(rs.WatchRequest(service="user"))
    await read(watch)
    await registry.store.close()
    error = await failure(watch.read())
    assert isinstance(error, e.Unavailable)
