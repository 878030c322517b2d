"""The three services in-process, from the production factories, with their whole state readable.

Used by the property-based tests: every service listens on a port-0 loopback
port (``create_server``), the product service checks sellers over gRPC
through the client runtime exactly as in production (static address of the
user server), and :meth:`World.state` returns everything any of them keeps -
every row of both SQLite files and every registry entry with its revision -
so a test can prove a failed request changed nothing.

Example::

    async with World.open(tmp_path) as world:
        channel = world.channels["user"]
        before = await world.state()
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
import grpc.aio
from google.protobuf import duration_pb2, field_mask_pb2
from google.protobuf.message import Message

from harness import start_server
from registry import MemoryStore, RegistryServicer, RegistrySettings, registry_service
from services.product import PAGE_TOKEN_SECRET as PRODUCT_SECRET
from services.product import SqliteProductStore, UserServiceSellers, product_service
from services.runtime import Client, ClientConfig, ServerConfig
from services.user import PAGE_TOKEN_SECRET as USER_SECRET
from services.user import SqliteUserStore, user_service
from services.user.client import UserClient
from switchboard.product.v1 import product_pb2
from switchboard.product.v1 import product_service_pb2 as ps
from switchboard.registry.v1 import instance_pb2
from switchboard.registry.v1 import registry_service_pb2 as rs
from switchboard.user.v1 import user_pb2
from switchboard.user.v1 import user_service_pb2 as us
from tests.reliability._support.strategies import Pool

__all__ = ["World"]

CALL_TIMEOUT_S = 5.0


@dataclass
class World:
    """Started in-process servers, a channel to each, and meaningful values to fuzz with."""

    data: Path
    registry_store: MemoryStore
    user_store: SqliteUserStore
    product_store: SqliteProductStore
    client: Client | None = None
    addresses: dict[str, str] = field(default_factory=dict)
    servers: list[grpc.aio.Server] = field(default_factory=list)
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    pool: Pool = field(default_factory=Pool)
    templates: dict[str, Message] = field(default_factory=dict)
    config: ServerConfig = field(default_factory=lambda: ServerConfig(grace_s=0))
    seed_metadata: tuple[tuple[str, str], ...] = ()

    @classmethod
    async def open(
        cls, data: Path, *, config: ServerConfig | None = None, token: str | None = None
    ) -> World:
        """Serve all three with ``config`` (listen replaced); with auth on, ``token`` seeds the
        data and is what product sends to user."""
        # A clock that never moves: no lease expires while a test compares states.
        registry_store = MemoryStore(clock=lambda: 1_000.0)
        await registry_store.start()
        user_store = SqliteUserStore.open(data / "user")
        product_store = SqliteProductStore.open(data / "product")
        world = cls(data, registry_store, user_store, product_store)
        if config is not None:
            world.config = config
        if token is not None:
            world.seed_metadata = (("authorization", f"Bearer {token}"),)
        await world._serve(
            "registry", [registry_service(RegistryServicer(registry_store, RegistrySettings()))]
        )
        await world._serve("user", [user_service(user_store, user_store.db.secret(USER_SECRET))])
        world.client = Client(
            ClientConfig(static={"user": (world.addresses["user"],)}, token=token)
        )
        sellers = UserServiceSellers(await UserClient.connect(world.client))
        secret = product_store.db.secret(PRODUCT_SECRET)
        await world._serve("product", [product_service(product_store, sellers, secret)])
        await world._seed()
        return world

    async def _serve(self, key: str, services: list[Any]) -> None:
        server = await start_server(services, self.config)
        self.servers.append(server.server)
        self.addresses[key] = server.address
        self.channels[key] = grpc.aio.insecure_channel(self.addresses[key])

    async def __aenter__(self) -> World:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()
        if self.client is not None:
            await self.client.close()
        self.user_store.end_watches()
        self.product_store.end_watches()
        for server in self.servers:
            await server.stop(None)
        await self.registry_store.close()
        self.user_store.close()
        self.product_store.close()

    # --- seed data ------------------------------------------------------------------------

    async def _seed(self) -> None:
        seller = await self._call("user", "CreateUser", us.CreateUserRequest(
            user=user_pb2.User(email="seller@example.com", display_name="Seller"),
            request_id="seed-user-1",
        ), us.CreateUserResponse)  # fmt: skip
        other = await self._call("user", "CreateUser", us.CreateUserRequest(
            user=user_pb2.User(email="other@example.com", display_name="Other"),
        ), us.CreateUserResponse)  # fmt: skip
        price = product_pb2.Money(currency_code="EUR", amount_minor=1999)
        product = await self._call("product", "CreateProduct", ps.CreateProductRequest(
            product=product_pb2.Product(
                sku="SKU-1", name="Lamp", price=price, stock=10, seller_id=seller.user.id
            ),
            request_id="seed-product-1",
        ), ps.CreateProductResponse)  # fmt: skip
        reserved = await self._call("product", "ReserveStock", ps.ReserveStockRequest(
            product_id=product.product.id, quantity=2, request_id="seed-reserve-1"
        ), ps.ReserveStockResponse)  # fmt: skip
        lease = await self._call("registry", "Register", rs.RegisterRequest(
            instance=instance_pb2.Instance(
                service="user", instance_id="user-1", address="127.0.0.1:5001"
            ),
            ttl=duration_pb2.Duration(seconds=30),
        ), rs.RegisterResponse)  # fmt: skip
        self.templates = _templates(seller.user, product.product, reserved.reservation, lease)
        ids = [
            seller.user.id,
            other.user.id,
            product.product.id,
            reserved.reservation.id,
            lease.lease_id,
        ]
        self.pool = Pool(
            by_name={
                "email": ["seller@example.com", "new@example.com", "Other@Example.COM"],
                "display_name": ["Ada", "Grace Hopper"],
                "etag": [seller.user.etag, product.product.etag],
                "sku": ["SKU-1", "SKU-2", "sku.with-dots_1"],
                "currency_code": ["EUR", "USD", "XXX", "eur", "EURO"],
                "service": ["user", "product", "fuzz", "User", "-x"],
                "instance_id": ["user-1", "i-2", "a:b.c_d-e"],
                "address": ["127.0.0.1:5002", "[::1]:80", "localhost:1", "host:0", "h:65536"],
                "version": ["1.0.0"],
                "request_id": ["seed-user-1", "seed-product-1", "seed-reserve-1", "fresh-1"],
                "page_token": ["", "AQ", "not-a-token"],
            },
            ids=ids,
            paths=[
                "email", "display_name", "id", "etag", "create_time", "sku", "name",
                "description", "price", "stock", "seller_id", "price.amount_minor",
            ],
        )  # fmt: skip

    async def _call(self, key: str, method: str, request: Any, response_type: Any) -> Any:
        service = {
            "registry": "switchboard.registry.v1.RegistryService",
            "user": "switchboard.user.v1.UserService",
            "product": "switchboard.product.v1.ProductService",
        }[key]
        call = self.channels[key].unary_unary(
            f"/{service}/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response_type.FromString,
        )
        return await call(request, timeout=CALL_TIMEOUT_S, metadata=self.seed_metadata)

    # --- state ----------------------------------------------------------------------------

    async def state(self) -> tuple[Any, ...]:
        """Every row of both databases and every registry entry, with the revisions."""
        return (
            _dump(self.data / "user" / SqliteUserStore.DATABASE_FILE),
            _dump(self.data / "product" / SqliteProductStore.DATABASE_FILE),
            await self._registry_state(),
        )

    async def _registry_state(self) -> tuple[Any, ...]:
        store = self.registry_store
        counts, revision = await store.list_services()
        entries = []
        for count in counts:
            resolution = await store.resolve(count.name)
            entries.append(
                tuple(i.SerializeToString(deterministic=True) for i in resolution.instances)
            )
        return revision, store.instance_count, tuple(entries)


def _templates(
    user: user_pb2.User,
    product: product_pb2.Product,
    reservation: product_pb2.Reservation,
    lease: rs.RegisterResponse,
) -> dict[str, Message]:
    """A valid request for every RPC that needs more than defaults, on the seeded entities."""
    registry, users, products = (
        "/switchboard.registry.v1.RegistryService/",
        "/switchboard.user.v1.UserService/",
        "/switchboard.product.v1.ProductService/",
    )
    mask = field_mask_pb2.FieldMask
    price = product_pb2.Money(currency_code="USD", amount_minor=500)
    instance = instance_pb2.Instance(
        service="fuzz", instance_id="f-1", address="127.0.0.1:7000", version="1",
        metadata={"zone": "a"},
    )  # fmt: skip
    new_product = product_pb2.Product(
        sku="SKU-2", name="Chair", description="d", price=price, stock=5, seller_id=user.id
    )
    return {
        registry + "Register": rs.RegisterRequest(
            instance=instance, ttl=duration_pb2.Duration(seconds=60)
        ),
        registry + "Heartbeat": rs.HeartbeatRequest(lease_id=lease.lease_id),
        registry + "KeepAlive": rs.KeepAliveRequest(lease_id=lease.lease_id),
        registry + "Deregister": rs.DeregisterRequest(lease_id=lease.lease_id),
        registry + "Resolve": rs.ResolveRequest(service="user"),
        registry + "Watch": rs.WatchRequest(service="user"),
        users + "CreateUser": us.CreateUserRequest(
            user=user_pb2.User(email="new@example.com", display_name="New"), request_id="c-1"
        ),
        users + "GetUser": us.GetUserRequest(id=user.id),
        users + "ListUsers": us.ListUsersRequest(page_size=1),
        users + "UpdateUser": us.UpdateUserRequest(
            user=user_pb2.User(id=user.id, email="renamed@example.com", display_name="R"),
            update_mask=mask(paths=["display_name"]),
            request_id="u-1",
        ),
        users + "DeleteUser": us.DeleteUserRequest(id=user.id, etag=user.etag),
        products + "CreateProduct": ps.CreateProductRequest(product=new_product, request_id="p-1"),
        products + "GetProduct": ps.GetProductRequest(id=product.id),
        products + "ListProducts": ps.ListProductsRequest(page_size=1, seller_id=user.id),
        products + "UpdateProduct": ps.UpdateProductRequest(
            product=product_pb2.Product(id=product.id, stock=7, name="Lamp 2", price=price),
            update_mask=mask(paths=["stock"]),
            request_id="p-2",
        ),
        products + "DeleteProduct": ps.DeleteProductRequest(id=product.id),
        products + "ReserveStock": ps.ReserveStockRequest(
            product_id=product.id, quantity=1, request_id="r-1"
        ),
        products + "ReleaseStock": ps.ReleaseStockRequest(
            reservation_id=reservation.id, request_id="rel-1"
        ),
    }


def _dump(path: Path) -> tuple[Any, ...]:
    """Every row of every table of a SQLite file (read-only, alongside the server)."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                " ORDER BY name"
            )
        ]
        return tuple(
            (table, tuple(sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)))
            for table in tables
        )
