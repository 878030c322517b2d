"""The in-memory ``RegistryStore``: the default, everything in this process, lost on exit.

It follows the interface's model (``registry.store._interface``) with a bounded
history of recent events (a ring buffer) for resuming watches; a start revision
the history no longer covers gets a RESYNC snapshot.

Revisions across restarts. The in-memory store forgets everything when the
process exits, so its revisions must not be confused with an earlier run's.
By default the first revision is the wall-clock time in microseconds: a new run
starts above every revision an earlier run handed out (a run would need more
than one change per microsecond on average to catch up with the clock). A
watcher resuming from an earlier run's revision therefore asks for history
older than anything kept and gets a RESYNC snapshot. A start revision *larger*
than the current one (the clock went backwards, or the store started from
zero) cannot come from this run either and also gets a RESYNC snapshot: a
watch never waits for a revision that may never come. (etcd keeps its
revisions across restarts; a compacted revision there maps to the same RESYNC.)

Example::

    store = MemoryStore()
    await store.start()                     # starts the reaper
    reg = await store.register(instance, ttl=10.0)
    await store.renew(reg.lease_id)
    async with await store.watch("user", 0) as stream:
        first = await anext(stream)         # Snapshot(reason=INITIAL)
    await store.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import NamedTuple, Self

from google.protobuf import timestamp_pb2

from registry.store._interface import (
    Registration,
    Resolution,
    ServiceCount,
    StoreLimits,
    WatchItem,
    check_capacity,
    lease_not_found,
    lease_not_owned,
    new_lease_id,
    shutting_down,
    watch_limit,
)
from switchboard.registry.v1 import instance_pb2

__all__ = ["MemoryStore"]

_log = logging.getLogger("registry.store")

_Kind = instance_pb2.InstanceEventType
_ADDED = instance_pb2.INSTANCE_EVENT_TYPE_ADDED
_UPDATED = instance_pb2.INSTANCE_EVENT_TYPE_UPDATED
_REMOVED = instance_pb2.INSTANCE_EVENT_TYPE_REMOVED
_EXPIRED = instance_pb2.INSTANCE_EVENT_TYPE_EXPIRED
_INITIAL = instance_pb2.SNAPSHOT_REASON_INITIAL
_RESYNC = instance_pb2.SNAPSHOT_REASON_RESYNC

_REAP_BATCH = 2_000  # expiries per reaper step before yielding to the event loop
# Wire tags (field number << 3 | 2, length-delimited) of the fields built from bytes here.
_RENEW_TIME = b"\x3a"  # Instance.renew_time = 7
_SNAPSHOT_INSTANCES = b"\x0a"  # Snapshot.instances = 1


class _Record(NamedTuple):
    """One event in the history, kept serialized: a protobuf message costs ~1.5 KiB of
    arena in memory, its bytes ~100 B, and only a resuming watch ever reads them."""

    revision: int
    service: str
    event: bytes


class _Lease:
    """A granted lease, the instance attached to it, and who holds it (None: anyone).

    The instance is kept serialized, without its renew time (``data``): a
    protobuf message costs ~1.6 KiB of arena, its bytes ~150 B, and a renewal
    then only notes its time (``renewed``, ns since the epoch). Messages are
    built when read: :meth:`instance` for one, :func:`_instances` for a list in
    one arena (~0.7 KiB each).
    """

    __slots__ = (
        "data",
        "deadline",
        "instance_id",
        "lease_id",
        "owner",
        "renewed",
        "service",
        "ttl",
    )

    def __init__(
        self,
        lease_id: str,
        ttl: float,
        deadline: float,
        instance: instance_pb2.Instance,
        renewed: int,
        owner: str | None = None,
    ) -> None:
        self.lease_id = lease_id
        self.ttl = ttl
        self.deadline = deadline
        self.service = instance.service
        self.instance_id = instance.instance_id
        self.data = instance.SerializeToString()
        self.renewed = renewed
        self.owner = owner

    def wire(self) -> bytes:
        """The instance's wire bytes, its renew time included."""
        stamp = timestamp_pb2.Timestamp()
        stamp.FromNanoseconds(self.renewed)
        return self.data + _field(_RENEW_TIME, stamp.SerializeToString())

    def instance(self) -> instance_pb2.Instance:
        """The instance as a message of its own."""
        return instance_pb2.Instance.FromString(self.wire())


def _instances(leases: Iterable[_Lease]) -> list[instance_pb2.Instance]:
    """The leases' instances as messages, parsed together (one arena for all of them)."""
    joined = b"".join(_field(_SNAPSHOT_INSTANCES, lease.wire()) for lease in leases)
    return list(instance_pb2.Snapshot.FromString(joined).instances)


def _field(tag: bytes, data: bytes) -> bytes:
    """A length-delimited field: its tag, the length as a varint, the bytes."""
    length, size = bytearray(), len(data)
    while size > 0x7F:
        length.append(0x80 | (size & 0x7F))
        size >>= 7
    length.append(size)
    return tag + length + data


class MemoryStore:
    """The default ``RegistryStore``: everything in this process, lost on exit.

    Expiry uses a min-heap of ``(deadline, lease_id)``: a renewal only moves the
    lease's deadline (O(1)); when an entry reaches the top of the heap the reaper
    either evicts the lease or pushes it back with its current deadline, so each
    lease costs O(log n) once per TTL, whatever the number of leases.

    Example::

        store = MemoryStore(StoreLimits(history=100), initial_revision=0)
    """

    def __init__(
        self,
        limits: StoreLimits | None = None,
        *,
        initial_revision: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], int] = time.time_ns,
        reap_interval: float = 0.25,
        on_expired: Callable[[instance_pb2.Instance], None] | None = None,
    ) -> None:
        self.limits = limits or StoreLimits()
        self._on_expired = on_expired  # told of each lease the reaper expired (metrics)
        start = time.time_ns() // 1_000 if initial_revision is None else initial_revision
        self._revision = start
        self._clock = clock
        self._wall_clock = wall_clock
        self._reap_interval = reap_interval
        self._leases: dict[str, _Lease] = {}
        self._services: dict[str, dict[str, _Lease]] = {}
        # Resolve answers, kept until the service changes or a lease of it renews (the
        # answer carries renew times): the same object comes back while nothing changed.
        self._resolved: dict[str, Resolution] = {}
        self._count = 0
        self._expiry: list[tuple[float, str]] = []
        self._history: deque[_Record] = deque(maxlen=self.limits.history)
        self._watchers: dict[str, set[_Watcher]] = {}
        self._watcher_count = 0
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Start the reaper task (idempotent)."""
        self._check_open()
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap_forever(), name="registry-reaper")

    async def close(self) -> None:
        """Stop the reaper, end every watch with UNAVAILABLE, refuse further calls."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        for watchers in list(self._watchers.values()):
            for watcher in list(watchers):
                watcher.shut_down()

    @property
    def revision(self) -> int:
        """The current revision (the last change's, or the starting one)."""
        return self._revision

    @property
    def instance_count(self) -> int:
        """How many instances are registered, over all services."""
        return self._count

    @property
    def healthy(self) -> bool:
        """Always True: the memory store is this process."""
        return True

    @property
    def watcher_count(self) -> int:
        """How many watches are open."""
        return self._watcher_count

    # -- writes -----------------------------------------------------------------------

    async def register(
        self, instance: instance_pb2.Instance, ttl: float, *, owner: str | None = None
    ) -> Registration:
        """Store a copy of ``instance`` under a new lease of ``ttl`` seconds.

        An existing ``(service, instance_id)`` is replaced (an UPDATED event) and
        its lease revoked, so the old lease can never renew it again - unless
        another ``owner`` holds it (``PermissionDenied``).
        """
        self._check_open()
        instances = self._services.get(instance.service, {})
        old = instances.get(instance.instance_id)
        if old is None:
            self._check_capacity(instance.service, len(instances))
        else:
            _check_owner(old, owner)
        now = self._wall_clock()
        lease = _Lease(new_lease_id(), ttl, self._clock() + ttl, _stored(instance, now), now, owner)
        if old is not None:
            del self._leases[old.lease_id]
        else:
            self._count += 1
        self._services.setdefault(instance.service, instances)[instance.instance_id] = lease
        self._leases[lease.lease_id] = lease
        self._push_expiry(lease)
        revision = self._commit(_ADDED if old is None else _UPDATED, lease.instance())
        return Registration(lease.lease_id, ttl, revision)

    async def renew(self, lease_id: str, *, owner: str | None = None) -> float:
        """Give the lease its full TTL again from now; ``NotFound`` if it is gone."""
        self._check_open()
        lease = self._lease(lease_id)
        _check_owner(lease, owner)
        lease.deadline = self._clock() + lease.ttl
        lease.renewed = self._wall_clock()
        self._resolved.pop(lease.service, None)
        return lease.ttl

    async def deregister(self, lease_id: str, *, owner: str | None = None) -> int:
        """Remove the lease's instance (a REMOVED event) and revoke the lease."""
        self._check_open()
        lease = self._lease(lease_id)
        _check_owner(lease, owner)
        self._drop(lease, _REMOVED)
        return self._revision

    # -- reads ------------------------------------------------------------------------

    async def resolve(self, service: str) -> Resolution:
        """The live instances of ``service``, ordered by instance id.

        While the service is unchanged the same :class:`Resolution` comes back
        (with the revision it was built at: the state is the same since then).
        """
        self._check_open()
        cached = self._resolved.get(service)
        if cached is None:
            cached = Resolution(self._sorted_instances(service), self._revision)
            if service in self._services:  # never cache names nobody registered
                self._resolved[service] = cached
        return cached

    async def list_services(self) -> tuple[list[ServiceCount], int]:
        """Every service with an instance, ordered by name, with its count."""
        self._check_open()
        counts = [ServiceCount(name, len(self._services[name])) for name in sorted(self._services)]
        return counts, self._revision

    async def watch(self, service: str, start_revision: int) -> _Watcher:
        """Open a watch on ``service``; see the module docstring for resume rules.

        Raises ``ResourceExhausted`` when ``limits.max_watchers`` are open.
        """
        self._check_open()
        if self._watcher_count >= self.limits.max_watchers:
            raise watch_limit(self.limits.max_watchers)
        watcher = _Watcher(self, service, self.limits.watch_queue)
        watcher.preload(self._catch_up(service, start_revision))
        self._watchers.setdefault(service, set()).add(watcher)
        self._watcher_count += 1
        return watcher

    # -- expiry -----------------------------------------------------------------------

    def reap(self, now: float | None = None, limit: int = _REAP_BATCH) -> int:
        """Evict leases whose deadline passed, looking at most ``limit`` heap entries.

        Returns how many were evicted. The bound keeps one step short (a few
        ms) however many leases fall due at once; the reaper task calls again
        at once while entries are due. Tests call this with a fake clock.
        """
        now = self._clock() if now is None else now
        evicted = 0
        for _ in range(limit):
            if not self._expiry or self._expiry[0][0] > now:
                break
            _, lease_id = heapq.heappop(self._expiry)
            lease = self._leases.get(lease_id)
            if lease is None:
                continue  # revoked since: the heap entry was stale
            if lease.deadline > now:
                heapq.heappush(self._expiry, (lease.deadline, lease_id))  # renewed since
                continue
            instance = self._drop(lease, _EXPIRED)
            evicted += 1
            if self._on_expired is not None:
                self._on_expired(instance)
        return evicted

    async def _reap_forever(self) -> None:
        """Reap due leases, then sleep until the next deadline (at most one interval)."""
        while True:
            try:
                evicted = self.reap()
            except Exception:  # never let one bad step stop eviction for good
                _log.exception("lease reaper step failed")
                evicted = 0
            if evicted:
                _log.info("evicted %d expired instance(s)", evicted)
            await asyncio.sleep(self._next_reap_delay())

    def _next_reap_delay(self) -> float:
        """Seconds until the earliest heap deadline, within ``[0, reap_interval]``."""
        if not self._expiry:
            return self._reap_interval
        return min(max(self._expiry[0][0] - self._clock(), 0.0), self._reap_interval)

    def _push_expiry(self, lease: _Lease) -> None:
        """Add the lease to the expiry heap, compacting stale entries when they pile up."""
        heapq.heappush(self._expiry, (lease.deadline, lease.lease_id))
        if len(self._expiry) > 2 * len(self._leases) + 1_024:
            self._expiry = [(le.deadline, le.lease_id) for le in self._leases.values()]
            heapq.heapify(self._expiry)

    # -- internals --------------------------------------------------------------------

    def _check_open(self) -> None:
        """Refuse work once closed (the process is shutting down)."""
        if self._closed:
            raise shutting_down()

    def _check_capacity(self, service: str, in_service: int) -> None:
        """``ResourceExhausted`` if one more instance would break a cap."""
        check_capacity(self.limits, service, in_service, self._count)

    def _lease(self, lease_id: str) -> _Lease:
        """The live lease, or ``NotFound`` (the id is a secret: it is not echoed back)."""
        lease = self._leases.get(lease_id)
        if lease is None:
            raise lease_not_found()
        return lease

    def _drop(self, lease: _Lease, kind: _Kind.ValueType) -> instance_pb2.Instance:
        """Remove the lease and its instance; record and publish the change (the instance)."""
        del self._leases[lease.lease_id]
        instances = self._services[lease.service]
        del instances[lease.instance_id]
        if not instances:
            del self._services[lease.service]
        self._count -= 1
        instance = lease.instance()
        self._commit(kind, instance)
        return instance

    def _commit(self, kind: _Kind.ValueType, instance: instance_pb2.Instance) -> int:
        """Bump the revision, keep the event in history and hand it to the watchers."""
        self._revision += 1
        self._resolved.pop(instance.service, None)
        event = instance_pb2.InstanceEvent(type=kind, instance=instance, revision=self._revision)
        self._history.append(_Record(self._revision, instance.service, event.SerializeToString()))
        for watcher in self._watchers.get(instance.service, ()):
            watcher.push(event)
        return self._revision

    def _sorted_instances(self, service: str) -> list[instance_pb2.Instance]:
        """The service's stored instances ordered by instance id."""
        instances = self._services.get(service)
        if not instances:
            return []
        return _instances(instances[key] for key in sorted(instances))

    def snapshot(self, service: str, reason: int) -> instance_pb2.Snapshot:
        """The service's full state now, as a Snapshot message."""
        return instance_pb2.Snapshot(
            instances=self._sorted_instances(service),
            revision=self._revision,
            reason=reason,  # type: ignore[arg-type]
        )

    def _catch_up(self, service: str, start_revision: int) -> list[WatchItem]:
        """What a new watch sends first: a snapshot, or the retained events after a revision."""
        if start_revision == 0:
            return [self.snapshot(service, _INITIAL)]
        records = self._records_after(start_revision)
        if records is None:
            return [self.snapshot(service, _RESYNC)]
        mine = [r.event for r in records if r.service == service]
        if len(mine) > self.limits.watch_queue:
            return [self.snapshot(service, _RESYNC)]  # cheaper than replaying that much
        return [instance_pb2.InstanceEvent.FromString(data) for data in mine]

    def _records_after(self, revision: int) -> list[_Record] | None:
        """Every event after ``revision`` in order, or None if history no longer covers it.

        History is contiguous (one event per revision), so it covers ``revision``
        when the oldest kept event is at most ``revision + 1``. A revision above
        the current one is from another run of the registry: not covered either.
        """
        if revision > self._revision:
            return None
        oldest = self._history[0].revision if self._history else self._revision + 1
        if revision < oldest - 1:
            return None
        newer: list[_Record] = []
        for record in reversed(self._history):  # the wanted events are the newest ones
            if record.revision <= revision:
                break
            newer.append(record)
        newer.reverse()
        return newer

    def remove_watcher(self, watcher: _Watcher) -> None:
        """Forget a closed watcher (idempotent)."""
        watchers = self._watchers.get(watcher.service)
        if watchers is None or watcher not in watchers:
            return
        watchers.discard(watcher)
        if not watchers:
            del self._watchers[watcher.service]
        self._watcher_count -= 1


def _stored(instance: instance_pb2.Instance, now: int) -> instance_pb2.Instance:
    """The copy the store keeps: stamped with its register time, no renew time (the
    lease keeps that)."""
    stored = instance_pb2.Instance()
    stored.CopyFrom(instance)
    stored.register_time.FromNanoseconds(now)
    stored.ClearField("renew_time")
    return stored


def _check_owner(lease: _Lease, owner: str | None) -> None:
    """``PermissionDenied`` unless ``owner`` (when given) is the identity holding ``lease``."""
    if owner is not None and lease.owner != owner:
        raise lease_not_owned()


class _Watcher:
    """One open watch: a bounded queue of pending items and a wake-up event.

    ``push`` is O(1) and never blocks the writer: a watcher that already holds
    ``limit`` undelivered events drops them all and is owed a RESYNC snapshot,
    taken when it next reads (so its memory stays bounded however slow it is).
    """

    def __init__(self, store: MemoryStore, service: str, limit: int) -> None:
        self.service = service
        self._store = store
        self._limit = limit
        self._queue: deque[WatchItem] = deque()
        self._wakeup = asyncio.Event()
        self._resync = False
        self._state = "open"  # "open" | "closed" (by its reader) | "shut down" (by the store)

    def preload(self, items: list[WatchItem]) -> None:
        """Queue the catch-up items (a snapshot or replayed events)."""
        self._queue.extend(items)
        if items:
            self._wakeup.set()

    def push(self, event: instance_pb2.InstanceEvent) -> None:
        """Queue a live event, or switch to "owe a RESYNC" when the queue is full."""
        if self._resync:
            return
        if len(self._queue) >= self._limit:
            self._queue.clear()
            self._resync = True
        else:
            self._queue.append(event)
        self._wakeup.set()

    def shut_down(self) -> None:
        """End the watch from the store's side: the reader gets ``Unavailable``."""
        self._state = "shut down"
        self._store.remove_watcher(self)
        self._wakeup.set()

    def close(self) -> None:
        """End the watch from the reader's side (idempotent)."""
        if self._state == "open":
            self._state = "closed"
        self._store.remove_watcher(self)
        self._queue.clear()
        self._wakeup.set()

    def __aiter__(self) -> _Watcher:
        return self

    async def __anext__(self) -> WatchItem:
        """The next item: a pending RESYNC snapshot first, then queued events, else wait."""
        while True:
            if self._state == "shut down":
                raise shutting_down()
            if self._state == "closed":
                raise StopAsyncIteration
            if self._resync:
                self._resync = False
                return self._store.snapshot(self.service, _RESYNC)
            if self._queue:
                return self._queue.popleft()
            self._wakeup.clear()
            await self._wakeup.wait()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
