"""The memory store keeps instances serialized: what it hands back is what was stored."""

from __future__ import annotations

import random

from google.protobuf import timestamp_pb2

from registry.store import MemoryStore
from registry.store._memory import _timestamp, _varint
from tests.registry._support import instance


def test_timestamp_bytes_are_protobuf_s_own() -> None:
    picks = [0, 1, 999_999_999, 10**9, 1_764_640_000_123_456_789, -5, -(10**9) - 3]
    picks += [random.Random(7).randrange(0, 2**62) for _ in range(500)]
    for ns in picks:
        stamp = timestamp_pb2.Timestamp()
        stamp.FromNanoseconds(ns)
        assert _timestamp(ns) == stamp.SerializeToString(), ns
    assert _varint(0) == b"\x00" and _varint(300) == b"\xac\x02"


async def test_instances_come_back_whole_with_their_renew_times() -> None:
    clock = iter(range(1_000_000_000, 10**12, 1_000_000_007))
    store = MemoryStore(initial_revision=0, wall_clock=lambda: next(clock))
    sent = instance(instance_id="a", metadata={"zone": "z1", "weight": "5"}, version="2.1")
    lease = await store.register(sent, 10.0)
    await store.register(instance(instance_id="b"), 10.0)
    first = (await store.resolve("user")).instances
    assert [i.instance_id for i in first] == ["a", "b"]
    assert dict(first[0].metadata) == {"zone": "z1", "weight": "5"}
    assert (first[0].address, first[0].version) == (sent.address, "2.1")
    assert first[0].register_time == first[0].renew_time
    await store.renew(lease.lease_id)
    renewed = (await store.resolve("user")).instances[0]
    assert renewed.register_time == first[0].register_time
    assert renewed.renew_time.ToNanoseconds() > first[0].renew_time.ToNanoseconds()
    stripped = type(renewed)()
    stripped.CopyFrom(renewed)
    stripped.ClearField("register_time")
    stripped.ClearField("renew_time")
    assert stripped == sent
