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

__all__ = ["EtcdWatch"]

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
