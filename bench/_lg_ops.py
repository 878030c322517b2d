"""Operations and setup calls of the Python load generator: registry, etcd, user service.

Every call has a deadline. Registry instances and the etcd values that stand for
them are the same bytes (a serialized ``Instance``), so both stores hold and
send equal payloads.

Example::

    async with grpc.aio.insecure_channel(address) as channel:
        leases = await register_many(channel, "svc", 100, ttl_s=300)
        ops = await registry_keepalive_ops(channel, leases)
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import grpc
import grpc.aio
from google.protobuf import duration_pb2

from bench._etcd import prefix_end
from bench._runner import Op
from switchboard.product.v1 import product_pb2, product_service_pb2, product_service_pb2_grpc
from switchboard.registry.v1 import instance_pb2
from switchboard.registry.v1 import registry_service_pb2 as rs
from switchboard.registry.v1 import registry_service_pb2_grpc as rs_grpc
from switchboard.user.v1 import user_pb2, user_service_pb2, user_service_pb2_grpc

__all__ = [
    "CALL_TIMEOUT_S",
    "bench_instance",
    "create_product",
    "create_users",
    "etcd_grant_and_put",
    "etcd_keepalive_ops",
    "etcd_key",
    "etcd_prefix",
    "gather_bounded",
    "own_channel",
    "register_many",
    "registry_keepalive_ops",
    "stub_get_user_ops",
]

CALL_TIMEOUT_S = 10.0
SETUP_CONCURRENCY = 64
STOCK = 1_000_000_000


def own_channel(target: str) -> grpc.aio.Channel:
    """A channel with its own connection (gRPC otherwise shares one per target and options)."""
    return grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


def bench_instance(service: str, index: int) -> instance_pb2.Instance:
    """The instance number ``index`` of ``service``: a realistic address, version, metadata."""
    return instance_pb2.Instance(
        service=service,
        instance_id=f"{service}-{index:06d}",
        address=f"127.0.0.{1 + index // 60000 % 250}:{1024 + index % 60000}",
        metadata={"zone": "bench-a", "weight": "100"},
        version="1.0.0",
    )


def etcd_key(service: str, instance_id: str) -> bytes:
    """Where the etcd peer keeps an instance: ``/registry/<service>/<instance id>``."""
    return f"/registry/{service}/{instance_id}".encode()


def etcd_prefix(service: str) -> tuple[bytes, bytes]:
    """The key range of every instance of ``service`` in the etcd peer."""
    prefix = f"/registry/{service}/".encode()
    return prefix, prefix_end(prefix)


async def gather_bounded(count: int, make: Any, concurrency: int = SETUP_CONCURRENCY) -> list[Any]:
    """``[await make(i) for i in range(count)]`` with at most ``concurrency`` in flight."""
    results: list[Any] = [None] * count
    indexes = iter(range(count))

    async def worker() -> None:
        for index in indexes:
            results[index] = await make(index)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    return results


# --- registry ----------------------------------------------------------------------------


async def register_many(
    channel: grpc.aio.Channel, service: str, count: int, *, ttl_s: int, start: int = 0
) -> list[str]:
    """Register ``count`` instances of ``service``; return their lease ids."""
    stub = rs_grpc.RegistryServiceStub(channel)
    ttl = duration_pb2.Duration(seconds=ttl_s)

    async def one(index: int) -> str:
        request = rs.RegisterRequest(instance=bench_instance(service, start + index), ttl=ttl)
        reply = await stub.Register(request, timeout=CALL_TIMEOUT_S)
        return str(reply.lease_id)

    return await gather_bounded(count, one)


async def registry_keepalive_ops(channel: grpc.aio.Channel, leases: Sequence[str]) -> list[Op]:
    """One KeepAlive stream per lease; each op renews its lease once (write, then read)."""
    stub = rs_grpc.RegistryServiceStub(channel)
    return [_stream_op(stub.KeepAlive(), rs.KeepAliveRequest(lease_id=lease)) for lease in leases]


def _stream_op(call: Any, request: Any) -> Op:
    async def renew() -> object:
        await call.write(request)
        reply = await call.read()
        if reply is grpc.aio.EOF:
            raise ConnectionError("stream ended")
        return reply

    return renew


# --- etcd --------------------------------------------------------------------------------


async def etcd_grant_and_put(
    channel: grpc.aio.Channel,
    stubs: tuple[ModuleType, ModuleType],
    service: str,
    count: int,
    *,
    ttl_s: int,
    start: int = 0,
) -> list[int]:
    """Grant one lease per instance and put the instance under it; return the lease ids."""
    pb, pb_grpc = stubs
    lease_stub, kv_stub = pb_grpc.LeaseStub(channel), pb_grpc.KVStub(channel)

    async def one(index: int) -> int:
        grant = await lease_stub.LeaseGrant(pb.LeaseGrantRequest(TTL=ttl_s), timeout=CALL_TIMEOUT_S)
        instance = bench_instance(service, start + index)
        key = etcd_key(service, instance.instance_id)
        put = pb.PutRequest(key=key, value=instance.SerializeToString(), lease=grant.ID)
        await kv_stub.Put(put, timeout=CALL_TIMEOUT_S)
        return int(grant.ID)

    return await gather_bounded(count, one)


async def etcd_keepalive_ops(
    channel: grpc.aio.Channel, stubs: tuple[ModuleType, ModuleType], leases: Sequence[int]
) -> list[Op]:
    """One LeaseKeepAlive stream per lease; each op renews its lease once."""
    pb, pb_grpc = stubs
    stub = pb_grpc.LeaseStub(channel)
    return [
        _stream_op(stub.LeaseKeepAlive(), pb.LeaseKeepAliveRequest(ID=lease)) for lease in leases
    ]


# --- user service ------------------------------------------------------------------------


def stub_get_user_ops(channel: grpc.aio.Channel, ids: Sequence[str], workers: int) -> list[Op]:
    """GetUser on a raw generated stub, each worker cycling over the ids from its own offset.

    The request is built per call, as the Switchboard client's ``get_user`` does.
    """
    stub = user_service_pb2_grpc.UserServiceStub(channel)

    def make(offset: int) -> Op:
        order = itertools.cycle([*ids[offset:], *ids[:offset]])

        async def get() -> object:
            request = user_service_pb2.GetUserRequest(id=next(order))
            return await stub.GetUser(request, timeout=CALL_TIMEOUT_S)

        return get

    return [make(w * len(ids) // workers) for w in range(workers)]


async def create_users(channel: grpc.aio.Channel, count: int, tag: str) -> list[user_pb2.User]:
    """Create ``count`` users (emails unique per ``tag``); return them."""
    stub = user_service_pb2_grpc.UserServiceStub(channel)

    async def one(index: int) -> user_pb2.User:
        user = user_pb2.User(
            email=f"bench-{tag}-{index:06d}@bench.example", display_name=f"Bench User {index:06d}"
        )
        request = user_service_pb2.CreateUserRequest(user=user, request_id=f"seed-{tag}-{index}")
        reply = await stub.CreateUser(request, timeout=CALL_TIMEOUT_S)
        return reply.user

    return await gather_bounded(count, one, concurrency=16)


async def create_product(
    channel: grpc.aio.Channel, seller_id: str, tag: str
) -> product_pb2.Product:
    """One product of ``seller_id`` with a billion units in stock (never runs out here)."""
    stub = product_service_pb2_grpc.ProductServiceStub(channel)
    product = product_pb2.Product(
        sku=f"BENCH-HOT-{tag}",
        name="Bench hot product",
        price=product_pb2.Money(currency_code="EUR", amount_minor=1999),
        stock=STOCK,
        seller_id=seller_id,
    )
    request = product_service_pb2.CreateProductRequest(product=product, request_id=f"hot-{tag}")
    return (await stub.CreateProduct(request, timeout=CALL_TIMEOUT_S)).product
