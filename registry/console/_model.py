"""What the console shows, kept current from the store's own watches.

:class:`ConsoleModel` follows every service the store lists: one
``store.watch`` per service (a snapshot, then each change), a bounded timeline
of recent changes, renewal times refreshed from ``store.resolve`` (renewals
change no revision, so no watch event carries them) and a bounded, cached
grpc.health.v1 check of each instance. Every change is published to the
subscribers (the Server-Sent Events streams) as one small message.

New services are found with ``store.list_services`` (the store has no watch
over every service): a service first seen in a listing is watched from the
revision of the previous listing, where it was absent, so its ADDED events are
replayed and none is missed. Only the store's public reads are used
(``list_services``, ``resolve``, ``watch``), so any ``RegistryStore`` works.

Example::

    model = ConsoleModel(store)
    await model.start()
    queue = model.subscribe()          # ("change", {...}) messages; None: reconnect
    state = model.state()              # {"revision": ..., "services": [...], "timeline": [...]}
    await model.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from registry.store import RegistryStore, WatchItem
from services.runtime import errors
from switchboard.registry.v1 import instance_pb2

__all__ = ["ConsoleModel", "Message", "instance_json"]

_log = logging.getLogger("registry.console")

Message = tuple[str, dict[str, Any]]
"""One published change: an SSE event name and its JSON data."""

HealthCheck = Callable[[str], Awaitable[str]]
"""Checks one address through grpc.health.v1; answers SERVING, NOT_SERVING, ..."""

_TYPES = {
    instance_pb2.INSTANCE_EVENT_TYPE_ADDED: "ADDED",
    instance_pb2.INSTANCE_EVENT_TYPE_UPDATED: "UPDATED",
    instance_pb2.INSTANCE_EVENT_TYPE_REMOVED: "REMOVED",
    instance_pb2.INSTANCE_EVENT_TYPE_EXPIRED: "EXPIRED",
}
_GONE = {"REMOVED", "EXPIRED"}
_QUEUE_LIMIT = 2_000  # messages a slow page may owe before it is told to reconnect


def instance_json(instance: instance_pb2.Instance) -> dict[str, Any]:
    """An instance as the API shows it (times in ms since the epoch).

    Example: ``instance_json(i)["address"] == "127.0.0.1:50052"``.
    """
    # Service names, versions and metadata repeat across instances: one string each
    # (the console holds every instance; ~10% of its memory per instance).
    return {
        "service": sys.intern(instance.service),
        "instance_id": instance.instance_id,
        "address": instance.address,
        "version": sys.intern(instance.version),
        "metadata": {sys.intern(k): sys.intern(v) for k, v in instance.metadata.items()},
        "register_time_ms": instance.register_time.ToMilliseconds(),
        "renew_time_ms": instance.renew_time.ToMilliseconds(),
    }


class ConsoleModel:
    """The console's live view of the store; see the module docstring."""

    def __init__(
        self,
        store: RegistryStore,
        *,
        health_check: HealthCheck | None = None,
        discover_interval_s: float = 0.25,
        renew_interval_s: float = 1.0,
        health_interval_s: float = 2.0,
        health_batch: int = 64,
        timeline: int = 500,
    ) -> None:
        self._store = store
        self._health_check = health_check
        self._discover_s = discover_interval_s
        self._renew_s = renew_interval_s
        self._health_s = health_interval_s
        self._health_batch = health_batch
        self.services: dict[str, dict[str, dict[str, Any]]] = {}
        self.revision = 0
        self.timeline: deque[dict[str, Any]] = deque(maxlen=timeline)
        self.lease_ttls: dict[tuple[str, str], float] = {}  # filled by TtlTap
        self._health: dict[tuple[str, str], str] = {}
        self._checked: dict[tuple[str, str], float] = {}
        self._watches: dict[str, asyncio.Task[None]] = {}
        self._subscribers: set[asyncio.Queue[Message | None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._listed_revision: int | None = None

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Start following the store (idempotent)."""
        if self._tasks:
            return
        loops = [self._discover_forever(), self._renewals_forever()]
        if self._health_check is not None:
            loops.append(self._health_forever())
        self._tasks = [asyncio.create_task(loop, name="console") for loop in loops]

    async def stop(self) -> None:
        """Stop following the store and end every subscriber's stream."""
        tasks = [*self._tasks, *self._watches.values()]
        self._tasks, self._watches = [], {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for queue in list(self._subscribers):
            _end(queue)
        self._subscribers.clear()

    # -- subscribers ----------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[Message | None]:
        """A queue of every message from now on; ``None`` means "reconnect"."""
        queue: asyncio.Queue[Message | None] = asyncio.Queue(maxsize=_QUEUE_LIMIT)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Message | None]) -> None:
        """Forget a subscriber (idempotent)."""
        self._subscribers.discard(queue)

    def _publish(self, kind: str, data: dict[str, Any]) -> None:
        """Hand a message to every subscriber; one that fell too far behind is ended."""
        for queue in list(self._subscribers):
            try:
                queue.put_nowait((kind, data))
            except asyncio.QueueFull:
                self._subscribers.discard(queue)
                _end(queue)

    # -- reads ----------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything the page shows: services with instances, and the timeline."""
        return {
            "revision": self.revision,
            "services": [self.service_json(name) for name in sorted(self.services)],
            "timeline": list(self.timeline),
        }

    def service_json(self, name: str) -> dict[str, Any]:
        """One service with its instances (ordered by id) and their health."""
        instances = self.services.get(name, {})
        return {
            "name": name,
            "instance_count": len(instances),
            "instances": [self._with_health(instances[key]) for key in sorted(instances)],
        }

    def _with_health(self, instance: dict[str, Any]) -> dict[str, Any]:
        key = (instance["service"], instance["instance_id"])
        health = self._health.get(key, "UNKNOWN")
        return {**instance, "health": health, "ttl_s": self.lease_ttls.get(key)}

    # -- following the store ----------------------------------------------------------

    async def _discover_forever(self) -> None:
        """List services; watch each new one; forget watches of services that emptied."""
        while True:
            try:
                await self._discover()
            except errors.Unavailable:
                pass  # the store is unreachable for now (etcd) or closing: stop() ends us
            except Exception:  # one failed listing must not end discovery
                _log.exception("console: listing services failed")
            await asyncio.sleep(self._discover_s)

    async def _discover(self) -> None:
        counts, revision = await self._store.list_services()
        listed = {count.name for count in counts}
        start = 0 if self._listed_revision is None else self._listed_revision
        for name in listed - self._watches.keys():
            self._watches[name] = asyncio.create_task(self._follow(name, start))
        for name in self._watches.keys() - listed:
            if not self.services.get(name):  # emptied: stop watching (bounds the watches)
                self._watches.pop(name).cancel()
                self.services.pop(name, None)
        self._listed_revision = revision

    async def _follow(self, name: str, start: int) -> None:
        """Apply one service's watch items until the store closes or the watch is dropped."""
        revision = start
        while True:
            try:
                async with await self._store.watch(name, revision) as stream:
                    async for item in stream:
                        revision = max(revision, self._apply(name, item))
            except errors.Unavailable:
                pass  # unreachable for now, or closing (then stop() cancels us)
            except Exception:
                _log.exception("console: watch of %s failed; resuming", name)
            await asyncio.sleep(1.0)  # resume from the last revision seen

    def _apply(self, name: str, item: WatchItem) -> int:
        """Fold one watch item into the view and publish it; return its revision."""
        self.revision = max(self.revision, item.revision)
        if isinstance(item, instance_pb2.Snapshot):
            self.services[name] = {i.instance_id: instance_json(i) for i in item.instances}
            if self._subscribers:  # a service's JSON is O(instances): only for a reader
                self._publish("service", self.service_json(name))
            return item.revision
        kind = _TYPES.get(item.type, "UNKNOWN")
        instance = instance_json(item.instance)
        instances = self.services.setdefault(name, {})
        if kind in _GONE:
            instances.pop(item.instance.instance_id, None)
            self._health.pop((name, item.instance.instance_id), None)
            self._checked.pop((name, item.instance.instance_id), None)
            self.lease_ttls.pop((name, item.instance.instance_id), None)
        else:
            instances[item.instance.instance_id] = instance
        entry = {
            "revision": item.revision,
            "type": kind,
            "service": name,
            "instance_id": item.instance.instance_id,
            "address": item.instance.address,
            "time_ms": int(time.time() * 1000),
        }
        self.timeline.append(entry)
        if self._subscribers:
            self._publish("change", {"event": entry, "service": self.service_json(name)})
        return item.revision

    async def _renewals_forever(self) -> None:
        """Renewals move no revision: re-read renew times and publish those that moved."""
        while True:
            await asyncio.sleep(self._renew_s)
            try:
                await self._refresh_renewals()
            except errors.Unavailable:
                pass
            except Exception:
                _log.exception("console: reading renewals failed")

    async def _refresh_renewals(self) -> None:
        moved: dict[str, dict[str, int]] = {}
        for name, instances in list(self.services.items()):
            resolution = await self._store.resolve(name)
            for instance in resolution.instances:
                known = instances.get(instance.instance_id)
                renewed = instance.renew_time.ToMilliseconds()
                if known is not None and known["renew_time_ms"] != renewed:
                    known["renew_time_ms"] = renewed
                    moved.setdefault(name, {})[instance.instance_id] = renewed
        if moved:
            self._publish("renewals", {"renewals": moved})

    async def _health_forever(self) -> None:
        """Check the least recently checked instances, a bounded batch each round."""
        while True:
            try:
                await self._check_batch()
            except Exception:
                _log.exception("console: health checks failed")
            await asyncio.sleep(self._health_s)

    async def _check_batch(self) -> None:
        assert self._health_check is not None
        keys = [(s, i) for s, instances in self.services.items() for i in instances]
        keys.sort(key=lambda key: self._checked.get(key, 0.0))
        batch = keys[: self._health_batch]
        results = await asyncio.gather(*(self._check_one(key) for key in batch))
        changed = [
            {"service": s, "instance_id": i, "health": status}
            for (s, i), status in zip(batch, results, strict=True)
            if status is not None
        ]
        if changed:
            self._publish("health", {"health": changed})

    async def _check_one(self, key: tuple[str, str]) -> str | None:
        """Check one instance; the new status if it changed, else None."""
        assert self._health_check is not None
        instance = self.services.get(key[0], {}).get(key[1])
        if instance is None:
            return None
        status = await self._health_check(instance["address"])
        self._checked[key] = time.monotonic()
        if key[1] not in self.services.get(key[0], {}) or self._health.get(key) == status:
            return None
        self._health[key] = status
        return status


def _end(queue: asyncio.Queue[Message | None]) -> None:
    """Tell a subscriber to reconnect: drop what it owes, then the end marker."""
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(None)
