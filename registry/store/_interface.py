"""The storage interface of the registry: ``RegistryStore`` and the types it speaks in.

Every store follows etcd's model (see ``registry.store`` for the implementations):

* one global **revision** that grows with every change (register, replace,
  deregister, expiry); renewals do not change it;
* **leases** with a TTL, granted by ``register``, renewed by ``renew``, revoked by
  ``deregister`` or by a replacing registration, expired by the store;
* **instances** keyed by ``(service, instance_id)``, each attached to one lease;
* **watches** per service from a revision. A start revision the store can no
  longer replay gets a ``SNAPSHOT_REASON_RESYNC`` snapshot, never a silent gap.

The errors every store raises for the same situation live here too, so a client
sees the same status, reason and details whichever store serves it.

Example::

    store: RegistryStore = MemoryStore()
    reg = await store.register(instance, ttl=10.0)
    await store.renew(reg.lease_id)
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from services.runtime import errors
from switchboard.registry.v1 import instance_pb2

__all__ = [
    "LEASE_TYPE",
    "Registration",
    "RegistryStore",
    "Resolution",
    "ServiceCount",
    "StoreLimits",
    "WatchItem",
    "WatchStream",
    "check_capacity",
    "lease_not_found",
    "lease_not_owned",
    "new_lease_id",
    "shutting_down",
    "watch_limit",
]

LEASE_TYPE = "switchboard.registry.v1.Lease"
"""The ``ResourceInfo.resource_type`` of a lease in NOT_FOUND details."""

WatchItem = instance_pb2.Snapshot | instance_pb2.InstanceEvent
"""What a watch stream yields: a full snapshot or one change."""


def new_lease_id() -> str:
    """A fresh, unguessable lease id: 192 random bits, URL-safe base64 (32 characters).

    Example: ``len(new_lease_id()) == 32``.
    """
    return secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class StoreLimits:
    """Caps that bound the store's memory; each breach is ``ResourceExhausted``.

    ``history`` is how many recent events a resuming watch can replay;
    ``watch_queue`` is how many undelivered events one watcher may hold before
    it is sent a RESYNC snapshot instead.

    Example: ``StoreLimits(max_instances=1_000, history=100)``.
    """

    max_instances: int = 100_000
    max_instances_per_service: int = 10_000
    max_watchers: int = 10_000
    history: int = 10_000
    watch_queue: int = 1_024


@dataclass(frozen=True, slots=True)
class Registration:
    """The outcome of ``register``: the new lease, its TTL in seconds, the revision."""

    lease_id: str
    ttl: float
    revision: int


@dataclass(frozen=True, slots=True)
class Resolution:
    """The live instances of a service (ordered by instance id) at a revision.

    The instances are the store's own: read them, copy them, never mutate them.
    """

    instances: list[instance_pb2.Instance]
    revision: int


@dataclass(frozen=True, slots=True)
class ServiceCount:
    """A service name and its number of live instances."""

    name: str
    instance_count: int


class WatchStream(Protocol):
    """An open watch: async-iterate it for items; close it (or use ``async with``) when done.

    Iteration raises ``errors.Unavailable`` when the store shuts down.
    """

    def __aiter__(self) -> AsyncIterator[WatchItem]: ...

    async def __anext__(self) -> WatchItem: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def close(self) -> None: ...


class RegistryStore(Protocol):
    """Where the registry keeps instances, leases and their change history.

    Errors are ``services.runtime.errors`` types: ``NotFound`` for an unknown
    lease, ``ResourceExhausted`` for a cap, ``Unavailable`` once closed. Inputs
    are validated by the caller; a store only enforces its own limits.
    """

    async def start(self) -> None:
        """Start background work (lease expiry)."""

    async def close(self) -> None:
        """Stop background work and end every open watch."""

    @property
    def watcher_count(self) -> int:
        """How many watches this process serves."""
        ...

    @property
    def healthy(self) -> bool:
        """False while the store cannot serve (the registry then reports NOT_SERVING)."""
        ...

    async def register(
        self, instance: instance_pb2.Instance, ttl: float, *, owner: str | None = None
    ) -> Registration:
        """Store ``instance`` under a new lease; replace (and revoke) an existing entry.

        ``owner`` (the client's certificate identity under mTLS, else None) owns
        the lease; an entry owned by another identity is ``PermissionDenied``.
        """
        ...

    async def renew(self, lease_id: str, *, owner: str | None = None) -> float:
        """Renew a lease for its full TTL again; return the TTL in seconds.

        ``PermissionDenied`` if ``owner`` is given and another identity owns the lease.
        """
        ...

    async def deregister(self, lease_id: str, *, owner: str | None = None) -> int:
        """Remove the lease's instance and revoke the lease; return the revision.

        ``PermissionDenied`` if ``owner`` is given and another identity owns the lease.
        """
        ...

    async def resolve(self, service: str) -> Resolution:
        """Live instances of ``service`` (none for an unknown service)."""
        ...

    async def list_services(self) -> tuple[list[ServiceCount], int]:
        """Services with at least one instance, ordered by name, and the revision."""
        ...

    async def watch(self, service: str, start_revision: int) -> WatchStream:
        """Open a watch: a snapshot (0), the events after ``start_revision``, or a RESYNC."""
        ...


# -- the errors every store raises alike -----------------------------------------------


def shutting_down() -> errors.Unavailable:
    """The store is closed (the process is stopping): try another replica or later."""
    return errors.Unavailable("registry is shutting down", retry_delay=1.0)


def lease_not_found() -> errors.NotFound:
    """An unknown lease (the id is a secret: it is not echoed back)."""
    return errors.NotFound(
        "lease not found: it expired, was revoked, or the registry restarted; register again",
        resource_type=LEASE_TYPE,
        reason="LEASE_NOT_FOUND",
    )


def lease_not_owned() -> errors.PermissionDenied:
    """The lease (or the entry a registration would replace) belongs to another identity."""
    return errors.PermissionDenied(
        "the lease belongs to another client certificate",
        reason="LEASE_NOT_OWNED",
    )


def watch_limit(limit: int) -> errors.ResourceExhausted:
    """Too many open watches."""
    return errors.ResourceExhausted(
        f"too many open watches (limit {limit})",
        reason="WATCH_LIMIT",
        metadata={"limit": str(limit)},
        retry_delay=1.0,
    )


def check_capacity(limits: StoreLimits, service: str, in_service: int, total: int) -> None:
    """``ResourceExhausted`` if one more instance would break a cap.

    Example: ``check_capacity(limits, "user", in_service=3, total=10)``.
    """
    if in_service >= limits.max_instances_per_service:
        raise errors.ResourceExhausted(
            f"service {service!r} has reached its limit of "
            f"{limits.max_instances_per_service} instances",
            reason="SERVICE_INSTANCE_LIMIT",
            metadata={"service": service, "limit": str(limits.max_instances_per_service)},
        )
    if total >= limits.max_instances:
        raise errors.ResourceExhausted(
            f"the registry has reached its limit of {limits.max_instances} instances",
            reason="INSTANCE_LIMIT",
            metadata={"limit": str(limits.max_instances)},
        )
