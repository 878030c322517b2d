"""The memory store keeps instances serialized: what it hands back is what was stored."""

from __future__ import annotations

from registry.store import MemoryStore
from tests.registry._support import instance


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
