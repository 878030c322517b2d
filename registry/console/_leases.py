"""The granted lease TTL of each instance, for the console's "lease left" column.

An instance record carries its register and renew times but not its TTL, and
renewals emit no watch event; the TTL is only in what ``register`` answers.
:class:`TtlTap` wraps the store the servicer writes through and notes each
granted TTL in a dict the console reads. Instances registered through another
registry replica (a shared etcd) are not seen here: their TTL shows as unknown.

Example::

    ttls: dict[tuple[str, str], float] = {}
    servicer = RegistryServicer(TtlTap(store, ttls), settings)
    # after a Register of user/u-1 with a 10 s TTL: ttls[("user", "u-1")] == 10.0
"""

from __future__ import annotations

from registry.store import Registration, RegistryStore, Resolution, ServiceCount, WatchStream
from switchboard.registry.v1 import instance_pb2

__all__ = ["TtlTap"]


class TtlTap:
    """A ``RegistryStore`` that delegates everything and records ``register``'s TTLs."""

    def __init__(self, inner: RegistryStore, ttls: dict[tuple[str, str], float]) -> None:
        self.inner = inner
        self._ttls = ttls

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
        registration = await self.inner.register(instance, ttl, owner=owner)
        self._ttls[(instance.service, instance.instance_id)] = registration.ttl
        return registration

    async def renew(self, lease_id: str, *, owner: str | None = None) -> float:
        return await self.inner.renew(lease_id, owner=owner)

    async def deregister(self, lease_id: str, *, owner: str | None = None) -> int:
        return await self.inner.deregister(lease_id, owner=owner)

    async def resolve(self, service: str) -> Resolution:
        return await self.inner.resolve(service)

    async def list_services(self) -> tuple[list[ServiceCount], int]:
        return await self.inner.list_services()

    async def watch(self, service: str, start_revision: int) -> WatchStream:
        return await self.inner.watch(service, start_revision)
