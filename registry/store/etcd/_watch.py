"""One registry watch served from an etcd Watch stream.

etcd keeps every revision until it is compacted, so a watch that moves to
another registry replica resumes from its last revision with no gap. A start
revision etcd has compacted (or one above etcd's current revision) gets a RESYNC
snapshot, then the events after it.

Example::

    watch = EtcdWatch(store, "user", items=[snapshot], from_revision=snapshot.revision + 1)
    await watch.open(deadline)
    async with watch:
        async for item in watch: ...
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import grpc
import grpc.aio
from etcd.api.etcdserverpb import rpc_pb2
from etcd.api.mvccpb import kv_pb2

from registry.store._interface import WatchItem, shutting_down
from registry.store.etcd._client import WatchCall, unavailable
from switchboard.registry.v1 import instance_pb2

if TYPE_CHECKING:
    from registry.store.etcd._store import EtcdStore

__all__ = ["EtcdWatch", "HubMember", "WatchHub", "translate"]

_ADDED = instance_pb2.INSTANCE_EVENT_TYPE_ADDED
_UPDATED = instance_pb2.INSTANCE_EVENT_TYPE_UPDATED
_REMOVED = instance_pb2.INSTANCE_EVENT_TYPE_REMOVED
_EXPIRED = instance_pb2.INSTANCE_EVENT_TYPE_EXPIRED
_RESYNC = instance_pb2.SNAPSHOT_REASON_RESYNC
_PUT = kv_pb2.Event.PUT


class EtcdWatch:
    """A ``WatchStream``: queued catch-up items, then events translated from etcd's."""

    def __init__(
        self, store: EtcdStore, service: str, items: list[WatchItem], from_revision: int
    ) -> None:
        self.service = service
        self._store = store
        self._queue: deque[WatchItem] = deque(items)
        self._from = from_revision
        self._call: WatchCall | None = None
        self._state = "open"  # "open" | "closed" (by its reader) | "shut down" (by the store)
        self._cancelled = False  # etcd cancelled the watch ...
        self._compacted = False  # ... because its start revision was compacted

    async def open(self, deadline: float) -> None:
        """Create the etcd watch from ``from_revision`` and wait for etcd to confirm it."""
        client = self._store.client
        await client.watch_ready(deadline)
        start, end = self._store.keys.watched(self.service)
        call = client.open_watch()
        self._call = call
        create = rpc_pb2.WatchCreateRequest(
            key=start, range_end=end, start_revision=self._from, prev_kv=True
        )
        try:
            await asyncio.wait_for(
                self._created(call, create), max(deadline - time.monotonic(), 0.001)
            )
        except (TimeoutError, grpc.aio.AioRpcError):
            call.cancel()
            raise unavailable("cannot open a watch") from None

    async def _created(self, call: WatchCall, create: rpc_pb2.WatchCreateRequest) -> None:
        await call.write(rpc_pb2.WatchRequest(create_request=create))
        while True:
            reply = await call.read()
            if not isinstance(reply, rpc_pb2.WatchResponse):  # EOF
                raise TimeoutError
            self._take(reply)
            if reply.created or reply.canceled:
                return

    def _take(self, reply: rpc_pb2.WatchResponse) -> None:
        """Queue what one etcd response means; a compacted start becomes a pending RESYNC."""
        if reply.canceled:
            self._compacted = reply.compact_revision > 0
            self._cancelled = True
            return
        self._queue.extend(translate(self._store, self.service, reply.events))

    def shut_down(self) -> None:
        """End the watch from the store's side: the reader gets ``Unavailable``."""
        self._state = "shut down"
        self._cancel()

    def close(self) -> None:
        """End the watch from the reader's side (idempotent)."""
        if self._state == "open":
            self._state = "closed"
        self._cancel()
        self._store.forget_watch(self)

    def _cancel(self) -> None:
        if self._call is not None:
            self._call.cancel()

    def __aiter__(self) -> EtcdWatch:
        return self

    async def __anext__(self) -> WatchItem:
        """The next item: queued ones first, then the next etcd response's."""
        while True:
            if self._state == "shut down":
                raise shutting_down()
            if self._state == "closed":
                raise StopAsyncIteration
            if self._queue:
                return self._queue.popleft()
            if self._cancelled:
                await self._restart()
                continue
            await self._read()

    async def _read(self) -> None:
        assert self._call is not None
        try:
            reply = await self._call.read()
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            if self._state != "open":
                return
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            raise unavailable("the etcd watch broke") from None
        if not isinstance(reply, rpc_pb2.WatchResponse):  # EOF
            raise unavailable("the etcd watch ended")
        self._take(reply)

    async def _restart(self) -> None:
        """After etcd cancelled the watch: RESYNC if it was compacted, else give up."""
        if not self._compacted:
            raise unavailable("etcd cancelled the watch")
        self._cancel()
        self._cancelled = self._compacted = False
        deadline = self._store.client.deadline()
        snapshot = await self._store.snapshot(self.service, _RESYNC, deadline)
        self._queue.append(snapshot)
        self._from = snapshot.revision + 1
        await self.open(deadline)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def translate(store: EtcdStore, service: str, events: Any) -> list[instance_pb2.InstanceEvent]:
    """etcd events -> registry events (markers say a delete was a deregistration).

    Example: a PUT of version 1 is ADDED, a later PUT UPDATED, a DELETE with a
    marker put at the same revision REMOVED, any other DELETE EXPIRED.
    """
    keys = store.keys
    removed: set[tuple[int, str]] = set()
    parsed = []
    for event in events:
        instance_id, is_marker = keys.parse_watched(service, event.kv.key)
        if is_marker:
            if event.type == _PUT:
                removed.add((event.kv.mod_revision, instance_id))
            continue
        parsed.append((event, instance_id))
    out = []
    for event, instance_id in parsed:
        revision = event.kv.mod_revision
        if event.type == _PUT:
            kind = _ADDED if event.kv.version == 1 else _UPDATED
            instance = instance_pb2.Instance.FromString(event.kv.value)
        else:
            kind = _REMOVED if (revision, instance_id) in removed else _EXPIRED
            instance = _deleted_instance(event, service, instance_id)
        out.append(instance_pb2.InstanceEvent(type=kind, instance=instance, revision=revision))
    return out


def _deleted_instance(event: Any, service: str, instance_id: str) -> instance_pb2.Instance:
    """The instance a delete removed: its previous value, or just its name if etcd lost it."""
    if event.HasField("prev_kv") and event.prev_kv.value:
        return instance_pb2.Instance.FromString(event.prev_kv.value)
    return instance_pb2.Instance(service=service, instance_id=instance_id)


class WatchHub:
    """One etcd watch on a service shared by every registry watch that can join it.

    Each etcd response is translated once and handed to every member, as the memory
    store does with its events: 1,000 watchers of a service cost one etcd watch, not
    1,000. A watch may join when it starts at or after what the hub has delivered
    (later events are filtered by revision); one resuming from further back gets an
    :class:`EtcdWatch` of its own, which replays etcd's history.

    Example::

        hub = WatchHub(store, "user", from_revision=snapshot.revision + 1)
        await hub.open(deadline)
        member = hub.join([snapshot], after=snapshot.revision)
    """

    def __init__(self, store: EtcdStore, service: str, from_revision: int) -> None:
        self.service = service
        self.delivered = from_revision - 1  # every event up to here has been handed out
        self._store = store
        self._from = from_revision
        self._members: set[HubMember] = set()
        self._call: WatchCall | None = None
        self._reader: asyncio.Task[None] | None = None
        self.failed = False

    async def open(self, deadline: float) -> None:
        """Create the etcd watch and start reading it."""
        client = self._store.client
        await client.watch_ready(deadline)
        start, end = self._store.keys.watched(self.service)
        call = client.open_watch()
        self._call = call
        create = rpc_pb2.WatchCreateRequest(
            key=start, range_end=end, start_revision=self._from, prev_kv=True
        )
        try:
            await asyncio.wait_for(_created(call, create), max(deadline - time.monotonic(), 0.001))
        except (TimeoutError, grpc.aio.AioRpcError):
            self.fail()
            raise unavailable("cannot open a watch") from None
        self._reader = asyncio.create_task(self._read(call), name=f"etcd-watch-{self.service}")

    def can_join(self, after: int) -> bool:
        """Whether a watch that has seen everything up to ``after`` can take its events here."""
        return not self.failed and after >= self.delivered

    def join(self, items: list[WatchItem], after: int) -> HubMember:
        member = HubMember(self, items, after, self._store.limits.watch_queue)
        self._members.add(member)
        return member

    def leave(self, member: HubMember) -> None:
        self._members.discard(member)
        if not self._members:
            self.fail()  # nobody listens: stop the etcd watch

    async def _read(self, call: WatchCall) -> None:
        try:
            while True:
                reply = await call.read()
                if not isinstance(reply, rpc_pb2.WatchResponse) or reply.canceled:
                    break  # EOF, or etcd cancelled the watch
                events = translate(self._store, self.service, reply.events)
                if events:
                    self.delivered = events[-1].revision
                for member in list(self._members):
                    member.push(events)
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass
        self.fail()

    def fail(self, *, shutting_down: bool = False) -> None:
        """End the etcd watch; every member is told (UNAVAILABLE: reconnect and resume)."""
        if self.failed and not self._members:
            return
        self.failed = True
        self._store.forget_hub(self)
        if self._call is not None:
            self._call.cancel()
        members, self._members = self._members, set()
        for member in members:
            member.end(shutting_down=shutting_down)


async def _created(call: WatchCall, create: rpc_pb2.WatchCreateRequest) -> None:
    """Send the create request and wait for etcd's confirmation."""
    await call.write(rpc_pb2.WatchRequest(create_request=create))
    reply = await call.read()
    if not isinstance(reply, rpc_pb2.WatchResponse) or not reply.created or reply.canceled:
        raise TimeoutError


class HubMember:
    """One registry watch fed by a :class:`WatchHub`: a bounded queue, like the memory store's.

    A member that falls ``limit`` events behind drops them and is owed a RESYNC
    snapshot, taken when it next reads; events up to that snapshot are skipped.
    """

    def __init__(self, hub: WatchHub, items: list[WatchItem], after: int, limit: int) -> None:
        self.service = hub.service
        self._hub = hub
        self._queue: deque[WatchItem] = deque(items)
        self._after = after
        self._limit = limit
        self._wakeup = asyncio.Event()
        self._resync = False
        self._state = "open"  # "open" | "closed" | "shut down" | "broken"

    def push(self, events: list[instance_pb2.InstanceEvent]) -> None:
        if self._resync:
            return
        fresh = [e for e in events if e.revision > self._after]
        if len(self._queue) + len(fresh) > self._limit:
            self._queue.clear()
            self._resync = True
        else:
            self._queue.extend(fresh)
        self._wakeup.set()

    def end(self, *, shutting_down: bool) -> None:
        if self._state == "open":
            self._state = "shut down" if shutting_down else "broken"
        self._wakeup.set()

    def shut_down(self) -> None:
        self.end(shutting_down=True)
        self._hub.leave(self)

    def close(self) -> None:
        if self._state == "open":
            self._state = "closed"
        self._hub.leave(self)
        self._hub._store.forget_watch(self)
        self._wakeup.set()

    def __aiter__(self) -> HubMember:
        return self

    async def __anext__(self) -> WatchItem:
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._state == "closed":
                raise StopAsyncIteration
            if self._state == "shut down":
                raise shutting_down()
            if self._state == "broken":
                raise unavailable("the etcd watch broke")
            if self._resync:
                return await self._take_resync()
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _take_resync(self) -> instance_pb2.Snapshot:
        """A snapshot now; events queued meanwhile that it already covers are dropped."""
        self._resync = False
        store = self._hub._store
        snapshot = await store.snapshot(self.service, _RESYNC, store.client.deadline())
        self._after = snapshot.revision
        self._queue = deque(
            e
            for e in self._queue
            if not isinstance(e, instance_pb2.InstanceEvent) or e.revision > snapshot.revision
        )
        return snapshot

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
