"""Request builders and readers the registry's test modules share.

Example::

    lease = await stub.Register(register_request(instance_id="a", ttl_s=5))
    message = await read(watch_call)
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from etcd.api.etcdserverpb import rpc_pb2
from google.protobuf import duration_pb2

from registry.store.etcd import EtcdStore
from registry.store.etcd._client import EtcdNotFound
from switchboard.registry.v1 import instance_pb2 as pb
from switchboard.registry.v1 import registry_service_pb2 as rs
from switchboard.registry.v1 import registry_service_pb2_grpc as rs_grpc

__all__ = ["WAIT", "instance", "read", "register_request", "revoke_everything", "state"]

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
