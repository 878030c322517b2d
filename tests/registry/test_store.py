"""The RegistryStore contract on both stores (``any_store``), and MemoryStore's own
mechanics (fake clock, reaper, history ring, slow watchers).

Revisions are counted from ``base``, the store's revision when the test starts
(the memory store starts at the wall clock, a shared etcd wherever it is).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from etcd.api.etcdserverpb import rpc_pb2

from registry import RegistrySettings
from registry.store import MemoryStore, RegistryStore, StoreLimits, WatchItem
from registry.store.etcd import EtcdStore
from services.runtime import errors
from switchboard.registry.v1 import instance_pb2 as pb
from tests.registry._support import revoke_everything

ADDED = pb.INSTANCE_EVENT_TYPE_ADDED
UPDATED = pb.INSTANCE_EVENT_TYPE_UPDATED
REMOVED = pb.INSTANCE_EVENT_TYPE_REMOVED
EXPIRED = pb.INSTANCE_EVENT_TYPE_EXPIRED


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _instance(service: str = "user", instance_id: str = "u1", port: int = 5000) -> pb.Instance:
    return pb.Instance(service=service, instance_id=instance_id, address=f"127.0.0.1:{port}")


def _store(clock: FakeClock | None = None, **limits: int) -> MemoryStore:
    return MemoryStore(StoreLimits(**limits), initial_revision=0, clock=clock or FakeClock())


async def _next(stream: object) -> WatchItem:
    return await asyncio.wait_for(anext(stream), 2.0)  # type: ignore[call-overload]


def _ids(store_items: list[pb.Instance]) -> list[str]:
    return [i.instance_id for i in store_items]


MakeStore = Callable[..., Awaitable[tuple[RegistryStore, int]]]


@pytest.fixture
async def any_store(open_store: Callable[..., RegistryStore]) -> AsyncIterator[MakeStore]:
    """Started stores of this run's kind with given limits, and the revision they start at."""
    opened: list[RegistryStore] = []

    async def make(**limits: int) -> tuple[RegistryStore, int]:
        store = open_store(RegistrySettings(limits=StoreLimits(**limits)))
        await store.start()
        opened.append(store)
        return store, await _revision(store)

    yield make
    for store in opened:
        if isinstance(store, EtcdStore) and not store.closed:
            await revoke_everything(store)
        await store.close()


async def _revision(store: RegistryStore) -> int:
    return (await store.resolve("nobody")).revision


async def _count(store: RegistryStore) -> int:
    services, _ = await store.list_services()
    return sum(s.instance_count for s in services)


async def _forget_history(store: RegistryStore, before: int) -> None:
    """etcd: compact before ``before`` (the memory store's ``history`` limit does it)."""
    if isinstance(store, EtcdStore):
        client = store.client
        request = rpc_pb2.CompactionRequest(revision=before, physical=True)
        await client.call(client.kv.Compact, request, client.deadline())


async def test_register_resolve_deregister(any_store: MakeStore) -> None:
    store, base = await any_store()
    first = await store.register(_instance(instance_id="b"), 10.0)
    second = await store.register(_instance(instance_id="a"), 10.0)
    assert (first.revision, second.revision) == (base + 1, base + 2)
    assert first.lease_id != second.lease_id and len(first.lease_id) >= 22
    resolved = await store.resolve("user")
    assert _ids(resolved.instances) == ["a", "b"] and resolved.revision == base + 2
    assert resolved.instances[0].register_time.seconds > 0
    assert await store.deregister(first.lease_id) == base + 3
    assert _ids((await store.resolve("user")).instances) == ["a"]
    assert (await store.resolve("nobody")).instances == []


async def test_resolve_answer_is_reused_until_the_service_changes() -> None:
    store = _store()
    lease = await store.register(_instance(instance_id="a"), 10.0)
    await store.register(_instance("other", "x"), 10.0)
    first = await store.resolve("user")
    assert await store.resolve("user") is first
    await store.register(_instance("third", "y"), 10.0)  # another service: still valid
    assert await store.resolve("user") is first
    await store.renew(lease.lease_id)  # renew_time changed: a new answer
    renewed = await store.resolve("user")
    assert renewed is not first and _ids(renewed.instances) == ["a"]
    await store.register(_instance(instance_id="b"), 10.0)
    assert _ids((await store.resolve("user")).instances) == ["a", "b"]
    await store.resolve("nobody")
    assert "nobody" not in store._resolved  # unknown names are never kept


async def test_list_services_counts(any_store: MakeStore) -> None:
    store, base = await any_store()
    for service, instance_id in [("b", "1"), ("a", "1"), ("a", "2")]:
        await store.register(_instance(service, instance_id), 10.0)
    counts, revision = await store.list_services()
    assert [(c.name, c.instance_count) for c in counts] == [("a", 2), ("b", 1)]
    assert revision == base + 3


async def test_unknown_lease_is_not_found_without_echoing_it(any_store: MakeStore) -> None:
    store, _ = await any_store()
    with pytest.raises(errors.NotFound) as caught:
        await store.renew("secret-lease")
    assert "secret-lease" not in str(caught.value) and caught.value.reason == "LEASE_NOT_FOUND"
    with pytest.raises(errors.NotFound):
        await store.deregister("secret-lease")


async def test_replacement_revokes_the_old_lease(any_store: MakeStore) -> None:
    store, _ = await any_store()
    old = await store.register(_instance(port=1), 10.0)
    new = await store.register(_instance(port=2), 10.0)
    assert await _count(store) == 1
    with pytest.raises(errors.NotFound):
        await store.renew(old.lease_id)
    with pytest.raises(errors.NotFound):
        await store.deregister(old.lease_id)
    assert [i.address for i in (await store.resolve("user")).instances] == ["127.0.0.1:2"]
    assert await store.renew(new.lease_id) == 10.0


async def test_renew_postpones_expiry_and_reap_evicts_only_due_leases() -> None:
    clock = FakeClock()
    store = _store(clock)
    kept = await store.register(_instance(instance_id="kept"), 5.0)
    await store.register(_instance(instance_id="lost"), 5.0)
    await store.register(_instance(instance_id="long"), 60.0)
    clock.now += 4.0
    await store.renew(kept.lease_id)
    clock.now += 1.5
    assert store.reap() == 1
    assert _ids((await store.resolve("user")).instances) == ["kept", "long"]
    clock.now += 4.0
    assert store.reap() == 1  # "kept" was pushed back once, then ran out
    assert _ids((await store.resolve("user")).instances) == ["long"]
    with pytest.raises(errors.NotFound):
        await store.renew(kept.lease_id)


async def test_renew_updates_renew_time() -> None:
    wall = [1_000_000_000_000]
    store = MemoryStore(initial_revision=0, wall_clock=lambda: wall[0])
    lease = await store.register(_instance(), 10.0)
    wall[0] += 5_000_000_000
    await store.renew(lease.lease_id)
    (instance,) = (await store.resolve("user")).instances
    assert instance.renew_time.seconds - instance.register_time.seconds == 5


async def test_caps_refuse_new_instances_and_change_nothing(any_store: MakeStore) -> None:
    store, base = await any_store(max_instances_per_service=2, max_instances=3)
    await store.register(_instance("a", "1"), 10.0)
    await store.register(_instance("a", "2"), 10.0)
    with pytest.raises(errors.ResourceExhausted) as caught:
        await store.register(_instance("a", "3"), 10.0)
    assert caught.value.reason == "SERVICE_INSTANCE_LIMIT"
    await store.register(_instance("a", "2", port=9), 10.0)  # a replacement is no new instance
    await store.register(_instance("b", "1"), 10.0)
    with pytest.raises(errors.ResourceExhausted) as caught:
        await store.register(_instance("c", "1"), 10.0)
    assert caught.value.reason == "INSTANCE_LIMIT"
    assert (await _count(store), await _revision(store)) == (3, base + 4)


async def test_watch_starts_with_a_snapshot_then_live_events(any_store: MakeStore) -> None:
    store, base = await any_store()
    lease = await store.register(_instance(instance_id="a"), 10.0)
    async with await store.watch("user", 0) as stream:
        snapshot = await _next(stream)
        assert isinstance(snapshot, pb.Snapshot)
        assert snapshot.reason == pb.SNAPSHOT_REASON_INITIAL and snapshot.revision == base + 1
        assert _ids(list(snapshot.instances)) == ["a"]
        await store.register(_instance("other", "x"), 10.0)  # another service: not seen
        await store.register(_instance(instance_id="b"), 10.0)
        await store.register(_instance(instance_id="a", port=7), 10.0)
        await store.deregister((await store.register(_instance(instance_id="c"), 10.0)).lease_id)
        seen = [await _next(stream) for _ in range(4)]
    assert [(e.type, e.instance.instance_id, e.revision) for e in seen] == [  # type: ignore[union-attr]
        (ADDED, "b", base + 3),
        (UPDATED, "a", base + 4),
        (ADDED, "c", base + 5),
        (REMOVED, "c", base + 6),
    ]
    assert store.watcher_count == 0
    with pytest.raises(errors.NotFound):
        await store.renew(lease.lease_id)


async def test_watch_resumes_from_a_kept_revision(any_store: MakeStore) -> None:
    store, base = await any_store()
    for n in range(5):
        await store.register(_instance(instance_id=f"i{n}"), 10.0)
    await store.register(_instance("other", "x"), 10.0)
    async with await store.watch("user", base + 3) as stream:
        items = [await _next(stream) for _ in range(2)]
        assert [i.revision for i in items] == [base + 4, base + 5]
        assert all(isinstance(i, pb.InstanceEvent) for i in items)
        await store.register(_instance(instance_id="late"), 10.0)
        live = await _next(stream)
        assert isinstance(live, pb.InstanceEvent) and live.revision == base + 7


async def test_watch_from_the_current_revision_waits_for_the_next_change(
    any_store: MakeStore,
) -> None:
    store, base = await any_store()
    await store.register(_instance(), 10.0)
    async with await store.watch("user", base + 1) as stream:
        pending = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.05)  # let an (etcd) watch deliver anything it wrongly holds
        assert not pending.done()
        await store.register(_instance(instance_id="n"), 10.0)
        event = await asyncio.wait_for(pending, 2.0)
        assert isinstance(event, pb.InstanceEvent) and event.revision == base + 2


@pytest.mark.parametrize("start", [1, 5, 10_000])
async def test_too_old_or_future_revision_gets_a_resync_snapshot(
    any_store: MakeStore, start: int
) -> None:
    store, base = await any_store(history=4)
    for n in range(8):
        await store.register(_instance(instance_id=f"i{n}"), 10.0)
    # history keeps revisions 5..8: resuming after 4 or later is covered, 1 is not
    await _forget_history(store, base + 5)
    async with await store.watch("user", base + start) as stream:
        first = await _next(stream)
    if start == 5:
        assert isinstance(first, pb.InstanceEvent) and first.revision == base + 6
    else:
        assert isinstance(first, pb.Snapshot)
        assert first.reason == pb.SNAPSHOT_REASON_RESYNC and first.revision == base + 8
        assert len(first.instances) == 8


async def test_a_new_run_never_replays_an_old_runs_revisions() -> None:
    old = MemoryStore()
    await old.register(_instance(), 10.0)
    old_revision = old.revision
    new = MemoryStore()
    assert new.revision >= old_revision  # wall-clock micros: a later run starts higher
    for n in range(3):
        await new.register(_instance(instance_id=f"i{n}"), 10.0)
    async with await new.watch("user", old_revision) as stream:
        first = await _next(stream)
    assert isinstance(first, pb.Snapshot) and first.reason == pb.SNAPSHOT_REASON_RESYNC


async def test_a_slow_watcher_gets_a_resync_instead_of_unbounded_memory() -> None:
    store = _store(watch_queue=3)
    async with await store.watch("user", 0) as stream:
        assert isinstance(await _next(stream), pb.Snapshot)
        for n in range(10):
            await store.register(_instance(instance_id=f"i{n}"), 10.0)
        resync = await _next(stream)
        assert isinstance(resync, pb.Snapshot) and resync.reason == pb.SNAPSHOT_REASON_RESYNC
        assert resync.revision == 10 and len(resync.instances) == 10
        await store.register(_instance(instance_id="after"), 10.0)
        after = await _next(stream)
        assert isinstance(after, pb.InstanceEvent) and after.revision == 11


async def test_watch_cap(any_store: MakeStore) -> None:
    store, _ = await any_store(max_watchers=2)
    first = await store.watch("a", 0)
    await store.watch("b", 0)
    with pytest.raises(errors.ResourceExhausted) as caught:
        await store.watch("c", 0)
    assert caught.value.reason == "WATCH_LIMIT"
    first.close()
    first.close()
    (await store.watch("c", 0)).close()
    assert store.watcher_count == 1


async def test_one_change_reaches_many_watchers(any_store: MakeStore) -> None:
    store, base = await any_store()
    streams = [await store.watch("user", 0) for _ in range(1_000)]
    for stream in streams:
        await _next(stream)
    await store.register(_instance(), 10.0)
    events = [await _next(stream) for stream in streams]
    assert {e.revision for e in events} == {base + 1}
    for stream in streams:
        stream.close()


async def test_reaper_task_evicts_and_watchers_hear_expired() -> None:
    store = MemoryStore(initial_revision=0, reap_interval=0.02)
    await store.start()
    try:
        async with await store.watch("user", 0) as stream:
            await _next(stream)
            started = time.monotonic()
            await store.register(_instance(), 0.1)
            assert (await _next(stream)).type == ADDED  # type: ignore[union-attr]
            expired = await _next(stream)
            assert isinstance(expired, pb.InstanceEvent) and expired.type == EXPIRED
            assert expired.instance.instance_id == "u1"
            assert time.monotonic() - started < 1.0
    finally:
        await store.close()


async def test_close_ends_watches_with_unavailable_and_refuses_writes(
    any_store: MakeStore,
) -> None:
    store, _ = await any_store()
    stream = await store.watch("user", 0)
    await _next(stream)
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    await store.close()
    with pytest.raises(errors.Unavailable):
        await asyncio.wait_for(waiting, 2.0)
    with pytest.raises(errors.Unavailable):
        await store.register(_instance(), 10.0)
    assert store.watcher_count == 0


async def test_expiry_heap_stays_bounded_under_churn() -> None:
    store = _store()
    for n in range(5_000):
        await store.register(_instance(port=1 + n % 100), 10.0)  # same id: replaced each time
    assert len(store._expiry) <= 2 * store.instance_count + 1_024 + 1
