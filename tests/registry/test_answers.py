"""Answers serialized once (registry._wire): the bytes on the wire, read raw.

Resolve, Watch, Heartbeat and KeepAlive answer with bytes the servicer keeps
while they stay true. These tests read those bytes without a deserializer and
check when they are shared and when they must change. The caching is the
servicer's, whatever the store; the memory store is the one that hands back
the same state object while nothing changed, so it is the one used here.
"""

from __future__ import annotations

import asyncio

import grpc.aio
import pytest

from registry._wire import AnswerCache, as_bytes
from switchboard.registry.v1 import instance_pb2 as pb
from switchboard.registry.v1 import registry_service_pb2 as rs
from tests.registry._support import WAIT, Registry, register_request

_SERVICE = "/switchboard.registry.v1.RegistryService/"


@pytest.fixture
def store_kind() -> str:
    """Only the memory store (see the module docstring)."""
    return "memory"


async def _resolve_bytes(registry: Registry, service: str = "user") -> bytes:
    """One Resolve, its answer as the raw bytes the server sent."""
    call: grpc.aio.UnaryUnaryMultiCallable[rs.ResolveRequest, bytes] = registry.channel.unary_unary(
        _SERVICE + "Resolve", request_serializer=rs.ResolveRequest.SerializeToString
    )
    answer = await call(rs.ResolveRequest(service=service), timeout=WAIT)
    assert isinstance(answer, bytes)
    return answer


async def test_resolve_answer_is_reused_until_the_service_changes(registry: Registry) -> None:
    first = await registry.stub.Register(register_request(instance_id="a"))
    before = await _resolve_bytes(registry)
    assert await _resolve_bytes(registry) == before
    second = await registry.stub.Register(register_request(instance_id="b"))
    after = rs.ResolveResponse.FromString(await _resolve_bytes(registry))
    assert [i.instance_id for i in after.instances] == ["a", "b"]
    assert after.revision == second.revision > first.revision
    await registry.stub.Deregister(rs.DeregisterRequest(lease_id=second.lease_id))
    gone = rs.ResolveResponse.FromString(await _resolve_bytes(registry))
    assert [i.instance_id for i in gone.instances] == ["a"]
    assert gone.revision == second.revision + 1


async def test_a_renewal_changes_the_resolve_answer_at_the_same_revision(
    registry: Registry,
) -> None:
    lease = await registry.stub.Register(register_request(instance_id="a"))
    before = rs.ResolveResponse.FromString(await _resolve_bytes(registry))
    await asyncio.sleep(0.002)  # renew times are in nanoseconds: let the clock move
    await registry.stub.Heartbeat(rs.HeartbeatRequest(lease_id=lease.lease_id))
    after = rs.ResolveResponse.FromString(await _resolve_bytes(registry))
    assert after.revision == before.revision
    old, new = before.instances[0].renew_time, after.instances[0].renew_time
    assert new.ToNanoseconds() > old.ToNanoseconds()


async def test_every_watcher_gets_the_same_event_bytes(registry: Registry) -> None:
    watch: grpc.aio.UnaryStreamMultiCallable[rs.WatchRequest, bytes] = (
        registry.channel.unary_stream(
            _SERVICE + "Watch", request_serializer=rs.WatchRequest.SerializeToString
        )
    )
    calls = [watch(rs.WatchRequest(service="user"), timeout=4 * WAIT) for _ in range(3)]
    try:
        for call in calls:  # each has its own snapshot first
            data = await asyncio.wait_for(call.read(), WAIT)
            assert isinstance(data, bytes)
            snapshot = rs.WatchResponse.FromString(data)
            assert snapshot.HasField("snapshot")
        lease = await registry.stub.Register(register_request(instance_id="a"))
        events = [await asyncio.wait_for(call.read(), WAIT) for call in calls]
        assert all(isinstance(data, bytes) for data in events)
    finally:
        for call in calls:
            call.cancel()
    assert len(set(events)) == 1
    assert isinstance(events[0], bytes)
    event = rs.WatchResponse.FromString(events[0]).event
    assert event.type == pb.INSTANCE_EVENT_TYPE_ADDED
    assert event.revision == lease.revision and event.instance.instance_id == "a"


async def test_keepalive_answers_each_renewal_and_still_refuses_bad_input(
    registry: Registry,
) -> None:
    lease = await registry.stub.Register(register_request(instance_id="a", ttl_s=2))
    other = await registry.stub.Register(register_request(instance_id="b", ttl_s=3))
    stream = registry.stub.KeepAlive(timeout=4 * WAIT)
    for lease_id in (lease.lease_id, lease.lease_id, other.lease_id, lease.lease_id):
        await stream.write(rs.KeepAliveRequest(lease_id=lease_id))
        answer = await asyncio.wait_for(stream.read(), WAIT)
        assert isinstance(answer, rs.KeepAliveResponse)
        ttl = 2 if lease_id == lease.lease_id else 3
        assert answer.lease_id == lease_id and answer.ttl.seconds == ttl
    await stream.write(rs.KeepAliveRequest(lease_id="not a lease!"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(stream.read(), WAIT)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_heartbeat_answers_carry_each_lease_s_own_ttl(registry: Registry) -> None:
    short = await registry.stub.Register(register_request(instance_id="a", ttl_s=2))
    long = await registry.stub.Register(register_request(instance_id="b", ttl_s=7.5))
    for lease, ttl in ((short, 2.0), (long, 7.5), (short, 2.0)):
        beat = await registry.stub.Heartbeat(rs.HeartbeatRequest(lease_id=lease.lease_id))
        assert beat.ttl.ToNanoseconds() == ttl * 1e9


def test_answer_cache_keys_on_identity_and_stays_bounded() -> None:
    cache = AnswerCache(size=2)
    first, twin = pb.InstanceEvent(revision=1), pb.InstanceEvent(revision=1)
    built: list[int] = []

    def build(event: pb.InstanceEvent) -> bytes:
        built.append(event.revision)
        return event.SerializeToString()

    assert cache.get(first, lambda: build(first)) == first.SerializeToString()
    cache.get(first, lambda: build(first))
    cache.get(twin, lambda: build(twin))  # equal, but another object: built again
    assert built == [1, 1]
    third = pb.InstanceEvent(revision=3)
    cache.get(third, lambda: build(third))  # evicts the oldest (first)
    cache.get(first, lambda: build(first))
    assert built == [1, 1, 3, 1]


def test_as_bytes_passes_bytes_and_serializes_messages() -> None:
    message = rs.HeartbeatResponse()
    message.ttl.seconds = 5
    assert as_bytes(b"\x01\x02") == b"\x01\x02"
    assert as_bytes(message) == message.SerializeToString()
