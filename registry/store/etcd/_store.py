"""``EtcdStore``: the registry's state in an etcd cluster, shared by every registry replica.

Each registration is one etcd lease (TTL = the granted TTL) and the keys
attached to it (layout in ``_keys``), so etcd expires a silent instance by
itself and every replica sees the same instances, leases and revisions.
Renewals are etcd LeaseKeepAlive; Deregister revokes the lease; revisions are
etcd's; Watch is an etcd Watch from ``start_revision + 1``.

Every call's work in etcd is bounded by the caller's deadline (or
``--etcd-timeout``): while etcd is unreachable or has no quorum calls fail with
UNAVAILABLE in time, and ``healthy`` turns False until a probe succeeds again.

Differences from ``MemoryStore``, by design: a renewal does not rewrite the
instance (``renew_time`` stays the registration time: a write per heartbeat
would cost a Raft round), TTLs are whole seconds (etcd's unit; at least etcd's
minimum TTL), a deregistration takes two revisions (the change, then the lease
revocation), the caps are checked before a write rather than inside it (two
replicas racing for the last slot may both get it), and a watch's history is
etcd's (``--history`` does not apply; etcd's compaction does). Watches of a service
that start from now share one etcd watch (``_watch.WatchHub``) and each has the
memory store's bounded queue (``--watch-queue``, then a RESYNC snapshot).

Example::

    store = EtcdStore(EtcdConfig(("127.0.0.1:2379",)), StoreLimits())
    await store.start()
    reg = await store.register(instance, ttl=10.0)
    await store.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from etcd.api.etcdserverpb import rpc_pb2
from etcd.api.mvccpb import kv_pb2

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
from registry.store.etcd._client import EtcdClient, EtcdNotFound
from registry.store.etcd._config import EtcdConfig
from registry.store.etcd._keys import Holder, Keys, LeaseRecord
from registry.store.etcd._watch import EtcdWatch, HubMember, WatchHub
from services.runtime import errors
from switchboard.registry.v1 import instance_pb2

__all__ = ["EtcdStore"]

_log = logging.getLogger("registry.etcd")

_INITIAL = instance_pb2.SNAPSHOT_REASON_INITIAL
_RESYNC = instance_pb2.SNAPSHOT_REASON_RESYNC
_MOD = rpc_pb2.Compare.MOD
_VERSION = rpc_pb2.Compare.VERSION
_GREATER = rpc_pb2.Compare.GREATER
_CACHE_SIZE = 100_000  # lease records kept for renewals (they never change once written)
_REGISTER_ATTEMPTS = 8  # optimistic transactions before a contended registration gives up


class EtcdStore:
    """A ``RegistryStore`` in etcd; any number of replicas may share one cluster and prefix.

    ``on_health`` is called with False when etcd stops answering, True when it
    answers again (the registry maps it to its gRPC health status).
    """

    def __init__(
        self,
        config: EtcdConfig,
        limits: StoreLimits | None = None,
        *,
        probe_interval: float = 1.0,
        wall_clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self.limits = limits or StoreLimits()
        self.keys = Keys(config.prefix)
        self.client = EtcdClient(config)
        self.healthy = True
        self.on_health: Callable[[bool], object] | None = None
        self._probe_interval = probe_interval
        self._wall_clock = wall_clock
        self._records: OrderedDict[str, tuple[LeaseRecord, float]] = OrderedDict()
        self._watches: set[EtcdWatch | HubMember] = set()
        self._hubs: dict[str, WatchHub] = {}
        self._prober: asyncio.Task[None] | None = None
        self._closed = False
        self._connected = False

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Open the channel and start the health probe (idempotent)."""
        self._check_open()
        if not self._connected:
            await self.client.connect()
            self._connected = True
        if self._prober is None:
            self._prober = asyncio.create_task(self._probe_forever(), name="etcd-probe")

    async def close(self) -> None:
        """End every watch with UNAVAILABLE, stop the probe, close the channel."""
        if self._closed:
            return
        self._closed = True
        for watch in list(self._watches):
            watch.shut_down()
        self._watches.clear()
        for hub in list(self._hubs.values()):
            hub.fail(shutting_down=True)
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
        if self._connected:
            await self.client.close()

    @property
    def closed(self) -> bool:
        """True once ``close`` ran."""
        return self._closed

    @property
    def watcher_count(self) -> int:
        """How many watches this replica serves."""
        return len(self._watches)

    # -- writes -----------------------------------------------------------------------

    async def register(
        self, instance: instance_pb2.Instance, ttl: float, *, owner: str | None = None
    ) -> Registration:
        """Store ``instance`` under a new lease; replace (and revoke) an existing entry.

        One transaction writes the instance, its holder and the lease record,
        guarded by the holder's revision (another replica's concurrent write
        makes it try again).
        """
        self._check_open()
        deadline = self.client.deadline()
        granted = await self.client.call(
            self.client.lease.LeaseGrant,
            rpc_pb2.LeaseGrantRequest(TTL=max(1, math.ceil(ttl))),
            deadline,
        )
        lease_id = new_lease_id()
        record = LeaseRecord(
            granted.ID, float(granted.TTL), instance.service, instance.instance_id, owner
        )
        try:
            revision, old = await self._write_registration(instance, record, lease_id, deadline)
        except BaseException:
            await self._revoke_quietly(granted.ID)
            raise
        if old is not None:
            await self._revoke_quietly(old)
        self._remember(lease_id, record)
        return Registration(lease_id, record.ttl, revision)

    async def _write_registration(
        self, instance: instance_pb2.Instance, record: LeaseRecord, lease_id: str, deadline: float
    ) -> tuple[int, int | None]:
        """Write the entry; return its revision and the replaced entry's etcd lease, if any."""
        keys = self.keys
        holder_key = keys.holder(instance.service, instance.instance_id)
        stored = self._stored(instance).SerializeToString()
        for _ in range(_REGISTER_ATTEMPTS):
            found = await self._get(holder_key, deadline)
            old_holder = Holder.decode(found.value) if found is not None else None
            if old_holder is not None and old_holder.lease_id == lease_id:
                assert found is not None
                return found.mod_revision, None  # an earlier attempt went through after all
            if old_holder is None:
                await self._check_capacity(instance.service, deadline)
            elif record.owner is not None and old_holder.owner != record.owner:
                raise lease_not_owned()
            puts = [
                _put(keys.instance(instance.service, instance.instance_id), stored, record.etcd),
                _put(holder_key, Holder(lease_id, record.owner).encode(), record.etcd),
                _put(keys.lease(lease_id), record.encode(), record.etcd),
            ]
            if old_holder is not None:
                puts.append(_delete(keys.lease(old_holder.lease_id)))
            guard = rpc_pb2.Compare(
                key=holder_key, target=_MOD, mod_revision=found.mod_revision if found else 0
            )
            reply = await self._txn([guard], puts, deadline)
            if reply.succeeded:
                return reply.header.revision, found.lease if found is not None else None
        raise errors.Aborted(
            "the registration kept racing with another writer; try again",
            reason="REGISTRATION_CONTENDED",
            retry_delay=0.1,
        )

    async def renew(self, lease_id: str, *, owner: str | None = None) -> float:
        """Renew the lease's etcd lease once; ``NotFound`` if it is gone."""
        self._check_open()
        deadline = self.client.deadline()
        record = await self._record(lease_id, deadline, cached=True)
        _check_owner(record, owner)
        ttl = await self.client.keepalives.renew(record.etcd, deadline)
        if ttl <= 0:
            self._records.pop(lease_id, None)
            raise lease_not_found()
        return record.ttl

    async def deregister(self, lease_id: str, *, owner: str | None = None) -> int:
        """Delete the entry (with a REMOVED marker) in one transaction, then revoke the lease."""
        self._check_open()
        deadline = self.client.deadline()
        record = await self._record(lease_id, deadline, cached=False)
        _check_owner(record, owner)
        keys = self.keys
        service, instance_id = record.service, record.instance_id
        lease_key = keys.lease(lease_id)
        ops = [
            _delete(keys.instance(service, instance_id)),
            _delete(keys.holder(service, instance_id)),
            _delete(lease_key),
            _put(keys.marker(service, instance_id), b"", record.etcd),
        ]
        exists = rpc_pb2.Compare(key=lease_key, target=_VERSION, result=_GREATER, version=0)
        reply = await self._txn([exists], ops, deadline)
        self._records.pop(lease_id, None)
        if not reply.succeeded:
            raise lease_not_found()  # expired or deregistered meanwhile
        await self._revoke_quietly(record.etcd)
        return reply.header.revision

    # -- reads ------------------------------------------------------------------------

    async def resolve(self, service: str) -> Resolution:
        """The live instances of ``service`` ordered by instance id, at etcd's revision."""
        self._check_open()
        start, end = self.keys.instances_of(service)
        reply = await self._range(start, end, self.client.deadline())
        instances = [instance_pb2.Instance.FromString(kv.value) for kv in reply.kvs]
        return Resolution(instances, reply.header.revision)

    async def list_services(self) -> tuple[list[ServiceCount], int]:
        """Every service with an instance, ordered by name, with its count."""
        self._check_open()
        start, end = self.keys.holders()
        reply = await self._range(start, end, self.client.deadline(), keys_only=True)
        counts: dict[str, int] = {}
        for kv in reply.kvs:
            name = self.keys.service_of_holder(kv.key)
            counts[name] = counts.get(name, 0) + 1
        services = [ServiceCount(name, counts[name]) for name in sorted(counts)]
        return services, reply.header.revision

    async def watch(self, service: str, start_revision: int) -> EtcdWatch | HubMember:
        """A snapshot (0), etcd's events after ``start_revision``, or a RESYNC snapshot.

        Watches that start from now share one etcd watch per service (a :class:`WatchHub`);
        one resuming from an older revision replays etcd's history on a watch of its own.
        """
        self._check_open()
        if len(self._watches) >= self.limits.max_watchers:
            raise watch_limit(self.limits.max_watchers)
        deadline = self.client.deadline()
        items: list[WatchItem] = []
        if start_revision == 0:
            items.append(await self.snapshot(service, _INITIAL, deadline))
        elif start_revision > await self._current_revision(deadline):
            items.append(await self.snapshot(service, _RESYNC, deadline))  # not etcd's revision
        after = items[0].revision if items else start_revision
        hub = await self._hub(service, after, deadline, create=bool(items))
        watch: EtcdWatch | HubMember
        if hub is not None and hub.can_join(after):
            watch = hub.join(items, after)
        else:
            watch = EtcdWatch(self, service, items, after + 1)
            await watch.open(deadline)
        if self._closed:
            watch.shut_down()
        self._watches.add(watch)
        return watch

    async def _hub(
        self, service: str, after: int, deadline: float, *, create: bool
    ) -> WatchHub | None:
        """The service's shared watch; with ``create``, start one from ``after + 1`` if
        there is none (only from a fresh snapshot: an old revision may be compacted)."""
        hub = self._hubs.get(service)
        if hub is not None and not hub.failed:
            return hub
        if not create:
            return None
        hub = WatchHub(self, service, after + 1)
        self._hubs[service] = hub
        await hub.open(deadline)
        return hub

    def forget_hub(self, hub: WatchHub) -> None:
        """Forget a hub that ended (idempotent)."""
        if self._hubs.get(hub.service) is hub:
            del self._hubs[hub.service]

    async def snapshot(self, service: str, reason: int, deadline: float) -> instance_pb2.Snapshot:
        """The service's instances now, as a Snapshot at etcd's revision."""
        start, end = self.keys.instances_of(service)
        reply = await self._range(start, end, deadline)
        return instance_pb2.Snapshot(
            instances=[instance_pb2.Instance.FromString(kv.value) for kv in reply.kvs],
            revision=reply.header.revision,
            reason=reason,  # type: ignore[arg-type]
        )

    def forget_watch(self, watch: EtcdWatch | HubMember) -> None:
        """Forget a closed watch (idempotent)."""
        self._watches.discard(watch)

    # -- health -----------------------------------------------------------------------

    async def probe(self) -> bool:
        """One linearizable read (it needs a quorum): can etcd serve right now?"""
        start, end = self.keys.holders()
        request = rpc_pb2.RangeRequest(key=start, range_end=end, count_only=True, limit=1)
        deadline = time.monotonic() + min(self.config.timeout, 2.0)
        try:
            await self.client.call(self.client.kv.Range, request, deadline)
        except errors.Unavailable:
            return False
        return True

    async def _probe_forever(self) -> None:
        while True:
            healthy = await self.probe()
            if healthy != self.healthy:
                _log.warning("etcd is %s", "reachable again" if healthy else "unreachable")
                self.healthy = healthy
                self.client.degraded = not healthy
                if self.on_health is not None:
                    self.on_health(healthy)
            await asyncio.sleep(self._probe_interval)

    # -- internals --------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise shutting_down()

    async def _check_capacity(self, service: str, deadline: float) -> None:
        """``ResourceExhausted`` if one more instance would break a cap (checked, not locked)."""
        start, end = self.keys.instances_of(service)
        in_service = (await self._range(start, end, deadline, count_only=True)).count
        start, end = self.keys.holders()
        total = (await self._range(start, end, deadline, count_only=True)).count
        check_capacity(self.limits, service, in_service, total)

    async def _record(self, lease_id: str, deadline: float, *, cached: bool) -> LeaseRecord:
        """The lease record of ``lease_id`` (from the cache when allowed), or ``NotFound``.

        A cached record is trusted for at most its TTL: past that it is read again.
        """
        if cached:
            entry = self._records.get(lease_id)
            if entry is not None and entry[1] > time.monotonic():
                return entry[0]
        found = await self._get(self.keys.lease(lease_id), deadline)
        if found is None:
            self._records.pop(lease_id, None)
            raise lease_not_found()
        record = LeaseRecord.decode(found.value)
        self._remember(lease_id, record)
        return record

    def _remember(self, lease_id: str, record: LeaseRecord) -> None:
        self._records[lease_id] = (record, time.monotonic() + record.ttl)
        self._records.move_to_end(lease_id)
        while len(self._records) > _CACHE_SIZE:
            self._records.popitem(last=False)

    async def _get(self, key: bytes, deadline: float) -> kv_pb2.KeyValue | None:
        reply = await self._range(key, b"", deadline)
        return reply.kvs[0] if reply.kvs else None

    async def _range(
        self,
        key: bytes,
        end: bytes,
        deadline: float,
        *,
        keys_only: bool = False,
        count_only: bool = False,
    ) -> rpc_pb2.RangeResponse:
        request = rpc_pb2.RangeRequest(
            key=key, range_end=end, keys_only=keys_only, count_only=count_only
        )
        return await self.client.call(self.client.kv.Range, request, deadline)

    async def _current_revision(self, deadline: float) -> int:
        start, end = self.keys.holders()
        reply = await self._range(start, end, deadline, count_only=True)
        return reply.header.revision

    async def _txn(
        self, compare: list[rpc_pb2.Compare], success: list[rpc_pb2.RequestOp], deadline: float
    ) -> rpc_pb2.TxnResponse:
        request = rpc_pb2.TxnRequest(compare=compare, success=success)
        return await self.client.call(self.client.kv.Txn, request, deadline)

    async def _revoke_quietly(self, lease: int) -> None:
        """Revoke an etcd lease; if that fails it expires by itself within its TTL."""
        try:
            await self.client.call(
                self.client.lease.LeaseRevoke,
                rpc_pb2.LeaseRevokeRequest(ID=lease),
                self.client.deadline(),
            )
        except EtcdNotFound:
            pass
        except errors.Unavailable:
            _log.warning("could not revoke etcd lease %x: it will expire by itself", lease)

    def _stored(self, instance: instance_pb2.Instance) -> instance_pb2.Instance:
        """The copy the store keeps, stamped with register and renew times."""
        stored = instance_pb2.Instance()
        stored.CopyFrom(instance)
        now = self._wall_clock()
        stored.register_time.FromNanoseconds(now)
        stored.renew_time.FromNanoseconds(now)
        return stored


def _put(key: bytes, value: bytes, lease: int) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value, lease=lease))


def _delete(key: bytes) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=key))


def _check_owner(record: LeaseRecord, owner: str | None) -> None:
    """``PermissionDenied`` unless ``owner`` (when given) is the identity holding the lease."""
    if owner is not None and record.owner != owner:
        raise lease_not_owned()
