"""Request builders and readers the registry's test modules share.

Example::

    lease = await stub.Register(register_request(instance_id="a", ttl_s=5))
    message = await read(watch_call)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from etcd.api.etcdserverpb import rpc_pb2
from google.protobuf import duration_pb2

from registry import RegistrySettings
from registry.store import RegistryStore
from registry.store.etcd import EtcdStore
from registry.store.etcd._client import EtcdNotFound
from switchboard.registry.v1 import instance_pb2 as pb
from switchboard.registry.v1 import registry_service_pb2 as rs
from switchboard.registry.v1 import registry_service_pb2_grpc as rs_grpc

__all__ = [
    "WAIT",
    "MakeRegistry",
    "Registry",
    "eventually",
    "instance",
    "read",
    "register_request",
    "revoke_everything",
    "state",
]

WAIT = 3.0  # bound on every wait for a message


def instance(
    service: str = "user", instance_id: str = "u1", address: str = "127.0.0.1:5000", **kw: Any
) -> pb.Instance:
    """An Instance message with test defaults."""
    return pb.Instance(service=service, instance_id=instance_id, address=address, **kw)


def register_request(ttl_s: float = 0, **kw: Any) -> rs.RegisterRequest:
    """A RegisterRequest for ``instance(**kw)`` asking for ``ttl_s`` (0: the default)."""
    ttl = duration_pb2.Duration()
    ttl.FromNanoseconds(round(ttl_s * 1e9))
    return rs.RegisterRequest(instance=instance(**kw), ttl=ttl)


async def state(stub: rs_grpc.RegistryServiceAsyncStub) -> tuple[bytes, bytes]:
    """Everything a client can read, to show a refused request changed nothing."""
    resolved = await stub.Resolve(rs.ResolveRequest(service="user"))
    listed = await stub.ListServices(rs.ListServicesRequest())
    return resolved.SerializeToString(), listed.SerializeToString()


async def read(call: Any) -> rs.WatchResponse:
    """The next message of a Watch call, within ``WAIT`` seconds."""
    message = await asyncio.wait_for(call.read(), WAIT)
    assert isinstance(message, rs.WatchResponse), message
    return message


async def revoke_everything(store: EtcdStore) -> None:
    """Revoke every etcd lease a test's store still holds (so none expires in a later test)."""
    client = store.client
    start, end = store.keys.leases()
    reply = await client.call(
        client.kv.Range, rpc_pb2.RangeRequest(key=start, range_end=end), client.deadline()
    )
    for kv in reply.kvs:
        lease = rpc_pb2.LeaseRevokeRequest(ID=kv.lease)
        with contextlib.suppress(EtcdNotFound):
            await client.call(client.lease.LeaseRevoke, lease, client.deadline())


@dataclass
class Registry:
    """A started in-process registry and a client for it."""

    stub: rs_grpc.RegistryServiceAsyncStub
    store: RegistryStore
    server: grpc.aio.Server
    channel: grpc.aio.Channel
    port: int
    settings: RegistrySettings

    @property
    def on_etcd(self) -> bool:
        return isinstance(self.store, EtcdStore)

    def granted(self, ttl_s: float) -> float:
        """The TTL the store grants for ``ttl_s`` (etcd: whole seconds)."""
        return float(-(-ttl_s // 1)) if self.on_etcd else ttl_s

    async def forget_history(self, before: int) -> None:
        """Make revisions before ``before`` unreplayable (etcd: compact; memory: its
        ``history`` limit already does)."""
        if isinstance(self.store, EtcdStore):
            client = self.store.client
            request = rpc_pb2.CompactionRequest(revision=before, physical=True)
            await client.call(client.kv.Compact, request, client.deadline())

    async def close(self) -> None:
        await self.channel.close()
        if isinstance(self.store, EtcdStore) and not self.store.closed:
            await revoke_everything(self.store)
        await self.store.close()
        await self.server.stop(None)


MakeRegistry = Callable[..., Awaitable[Registry]]


async def eventually(predicate: Callable[[], bool], limit_s: float = 3.0) -> None:
    """Wait (bounded) until ``predicate()`` holds, for state with no event to await."""
    for _ in range(int(limit_s / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met within {limit_s}s")
