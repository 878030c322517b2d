"""The registry's metrics: a thin wrapper over any ``RegistryStore``, plus scrape-time gauges.

:class:`InstrumentedStore` implements the store interface by delegating to
another store (memory or etcd alike), timing each operation and counting
registrations, renewals, deregistrations and open watches. :func:`refresh_gauges`
sets the per-service instance counts and the current revision when
``/metrics`` is scraped (see ``services.runtime.metrics.add_scrape_hook``).

Example::

    store = InstrumentedStore(MemoryStore(), backend="memory")
    remove = add_scrape_hook(lambda: refresh_gauges(store))
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Self

from prometheus_client import Counter, Gauge, Histogram

from registry.store import Registration, RegistryStore, Resolution, ServiceCount, WatchItem
from registry.store import WatchStream as _WatchStream
from switchboard.registry.v1 import instance_pb2

__all__ = ["InstrumentedStore", "count_expiry", "refresh_gauges"]

INSTANCES = Gauge(
    "switchboard_registry_instances",
    "Live instances by service (each holds one lease).",
    ("service",),
)
LEASES = Gauge("switchboard_registry_leases", "Live leases (one per live instance).")
REVISION = Gauge("switchboard_registry_revision", "The store's current revision.")
WATCHERS = Gauge("switchboard_registry_watchers", "Open Watch streams.")
REGISTRATIONS = Counter(
    "switchboard_registry_registrations_total", "Successful Register calls (new leases)."
)
RENEWALS = Counter("switchboard_registry_renewals_total", "Successful lease renewals.")
DEREGISTRATIONS = Counter(
    "switchboard_registry_deregistrations_total",
    "Instances removed by Deregister (an explicit eviction).",
)
EXPIRIES = Counter(
    "switchboard_registry_expiries_total",
    "Leases expired because they were not renewed within their TTL, by service "
    "(memory store; with --etcd, etcd expires leases itself).",
    ("service",),
)
STORE_SECONDS = Histogram(
    "switchboard_registry_store_seconds",
    "Latency of store operations.",
    ("operation", "backend"),
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0),
)


class InstrumentedStore:
    """A ``RegistryStore`` that measures the one it wraps.

    ``inner`` is the wrapped store (tests and the app reach its extras through it).
    """

    def __init__(self, inner: RegistryStore, backend: str = "memory") -> None:
        self.inner = inner
        self._seconds = {
            op: STORE_SECONDS.labels(op, backend)
            for op in ("register", "renew", "deregister", "resolve", "list_services", "watch")
        }

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    @property
    def healthy(self) -> bool:
        """The wrapped store's health."""
        return self.inner.healthy

    @property
    def watcher_count(self) -> int:
        """The wrapped store's open watches."""
        return self.inner.watcher_count

    async def register(
        self, instance: instance_pb2.Instance, ttl: float, *, owner: str | None = None
    ) -> Registration:
        start = time.perf_counter()
        try:
            registration = await self.inner.register(instance, ttl, owner=owner)
        finally:
            self._seconds["register"].observe(time.perf_counter() - start)
        REGISTRATIONS.inc()
        return registration

    async def renew(self, lease_id: str, *, owner: str | None = None) -> float:
        start = time.perf_counter()
        try:
            ttl = await self.inner.renew(lease_id, owner=owner)
        finally:
            self._seconds["renew"].observe(time.perf_counter() - start)
        RENEWALS.inc()
        return ttl

    async def deregister(self, lease_id: str, *, owner: str | None = None) -> int:
        start = time.perf_counter()
        try:
            revision = await self.inner.deregister(lease_id, owner=owner)
        finally:
            self._seconds["deregister"].observe(time.perf_counter() - start)
        DEREGISTRATIONS.inc()
        return revision

    async def resolve(self, service: str) -> Resolution:
        start = time.perf_counter()
        try:
            return await self.inner.resolve(service)
        finally:
            self._seconds["resolve"].observe(time.perf_counter() - start)

    async def list_services(self) -> tuple[list[ServiceCount], int]:
        start = time.perf_counter()
        try:
            return await self.inner.list_services()
        finally:
            self._seconds["list_services"].observe(time.perf_counter() - start)

    async def watch(self, service: str, start_revision: int) -> _CountedWatch:
        start = time.perf_counter()
        try:
            stream = await self.inner.watch(service, start_revision)
        finally:
            self._seconds["watch"].observe(time.perf_counter() - start)
        return _CountedWatch(stream)


class _CountedWatch:
    """A watch stream that holds one unit of the watchers gauge until it is closed."""

    def __init__(self, inner: _WatchStream) -> None:
        self._inner = inner
        self._open = True
        WATCHERS.inc()

    def __aiter__(self) -> AsyncIterator[WatchItem]:
        return self._inner.__aiter__()  # items come straight from the store's stream

    async def __anext__(self) -> WatchItem:
        return await self._inner.__anext__()

    async def __aenter__(self) -> Self:
        await self._inner.__aenter__()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._inner.__aexit__(et, e, tb)
        finally:
            self._release()

    def close(self) -> None:
        self._inner.close()
        self._release()

    def _release(self) -> None:
        if self._open:
            self._open = False
            WATCHERS.dec()


async def refresh_gauges(store: RegistryStore) -> None:
    """Set the instance counts per service, the lease count and the revision from ``store``."""
    counts, revision = await store.list_services()
    INSTANCES.clear()
    for count in counts:
        INSTANCES.labels(count.name).set(count.instance_count)
    LEASES.set(sum(count.instance_count for count in counts))
    REVISION.set(revision)


def count_expiry(instance: instance_pb2.Instance) -> None:
    """Count one expired lease (the memory store's ``on_expired`` hook)."""
    EXPIRIES.labels(instance.service).inc()
