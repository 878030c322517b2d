"""A registry, a user service and product service(s) as real processes, and what the
delisting tests do with them: seed sellers with products and reservations, delete
sellers, wait (bounded) until their products are delisted, read the product log.

Example::

    async with Launcher(tmp_path) as launch:
        world = await Sellers.start(launch, tmp_path)
        seeded = await world.seed(10, products=2, reserved=1)
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc.aio

from harness import Launcher, Process
from switchboard.product.v1 import product_pb2, product_service_pb2_grpc
from switchboard.product.v1 import product_service_pb2 as pb
from switchboard.user.v1 import user_pb2, user_service_pb2, user_service_pb2_grpc

if TYPE_CHECKING:
    from switchboard.product.v1.product_service_pb2_grpc import ProductServiceAsyncStub

__all__ = ["CALL_S", "INITIAL_STOCK", "Seller", "World", "latencies_ms", "percentile"]

CALL_S = 5.0
"""Bound on each call (seconds)."""
INITIAL_STOCK = 5


@dataclass
class Seller:
    """A seeded seller: their products and active reservations, and when DeleteUser returned."""

    user_id: str
    products: list[str] = field(default_factory=list)
    reservations: list[str] = field(default_factory=list)
    deleted_ns: int = 0


class World:
    """The processes of one test, and typed calls to them."""

    def __init__(self, launch: Launcher, root: Path, registry: Process, user: Process) -> None:
        self.launch = launch
        self.root = root
        self.registry = registry
        self.user = user
        self.products: list[Process] = []

    @classmethod
    async def start(cls, launch: Launcher, root: Path, product_instances: int = 1) -> World:
        """Registry, user service, and ``product_instances`` product processes on one file."""
        registry = await launch.start("registry")
        user = await launch.start("services.user", "--data-dir", str(root / "u"), *_found(registry))
        world = cls(launch, root, registry, user)
        for _ in range(product_instances):
            world.products.append(
                await launch.start(
                    "services.product", "--data-dir", str(root / "p"), *_found(registry)
                )
            )
        return world

    def product_stub(self, channel: grpc.aio.Channel) -> ProductServiceAsyncStub:
        """A product stub on ``channel``."""
        return product_service_pb2_grpc.ProductServiceStub(channel)

    async def seed(self, sellers: int, products: int, reserved: int) -> list[Seller]:
        """``sellers`` users, each with ``products`` products (INITIAL_STOCK units) of which
        the first ``reserved`` have an active reservation of 2 units."""
        seeded: list[Seller] = []
        async with (
            grpc.aio.insecure_channel(self.user.address) as uc,
            grpc.aio.insecure_channel(self.products[0].address) as pc,
        ):
            users = user_service_pb2_grpc.UserServiceStub(uc)
            stub = self.product_stub(pc)
            for n in range(sellers):
                user = user_pb2.User(email=f"seller{n}@example.com", display_name=f"Seller {n}")
                request = user_service_pb2.CreateUserRequest(user=user)
                seller = Seller((await users.CreateUser(request, timeout=CALL_S)).user.id)
                for i in range(products):
                    product = product_pb2.Product(
                        sku=f"S{n}-{i}", name="Lamp", stock=INITIAL_STOCK, seller_id=seller.user_id,
                        price=product_pb2.Money(currency_code="EUR", amount_minor=100),
                    )  # fmt: skip
                    create = pb.CreateProductRequest(product=product)
                    seller.products.append(
                        (await stub.CreateProduct(create, timeout=CALL_S)).product.id
                    )
                for i in range(reserved):
                    take = pb.ReserveStockRequest(
                        product_id=seller.products[i], quantity=2, request_id=f"seed-{n}-{i}"
                    )
                    reply = await stub.ReserveStock(take, timeout=CALL_S)
                    seller.reservations.append(reply.reservation.id)
                seeded.append(seller)
        return seeded

    async def delete(self, sellers: list[Seller], concurrency: int = 8) -> None:
        """DeleteUser each seller (``concurrency`` at a time), noting when each returned."""
        queue = list(reversed(sellers))
        async with grpc.aio.insecure_channel(self.user.address) as channel:
            users = user_service_pb2_grpc.UserServiceStub(channel)

            async def worker() -> None:
                while queue:
                    seller = queue.pop()
                    request = user_service_pb2.DeleteUserRequest(id=seller.user_id)
                    await users.DeleteUser(request, timeout=CALL_S)
                    seller.deleted_ns = time.time_ns()

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    async def wait_delisted(self, sellers: list[Seller], within_s: float) -> None:
        """Until every product of ``sellers`` is DELISTED (AssertionError after ``within_s``)."""
        wanted = {p for s in sellers for p in s.products}
        deadline = time.monotonic() + within_s
        left = wanted
        while time.monotonic() < deadline:
            left = wanted - set(self.log_counts()["DELISTED"])
            if not left:
                return
            await asyncio.sleep(0.05)  # polling the product log: no event reaches the test
        raise AssertionError(f"{len(left)} product(s) not delisted after {within_s} s")

    def log_counts(self) -> dict[str, Counter[str]]:
        """Per event kind, how many events each resource id has in the product log."""
        counts: dict[str, Counter[str]] = {}
        for kind, resource_id in self._query("SELECT kind, resource_id FROM events"):
            counts.setdefault(kind, Counter())[resource_id] += 1
        counts.setdefault("DELISTED", Counter())
        counts.setdefault("STOCK_RELEASED", Counter())
        return counts

    def released(self) -> Counter[str]:
        """How many STOCK_RELEASED events each reservation has."""
        found: Counter[str] = Counter()
        for (payload,) in self._query("SELECT payload FROM events WHERE kind = 'STOCK_RELEASED'"):
            found[product_pb2.ProductEvent.FromString(payload).reservation.id] += 1
        return found

    def delisted_at(self) -> dict[str, int]:
        """The commit time (ns) of each product's DELISTED event."""
        rows = self._query("SELECT resource_id, commit_time_ns FROM events WHERE kind = 'DELISTED'")
        return {product_id: int(at) for product_id, at in rows}

    def stock_and_state(self) -> dict[str, tuple[int, int]]:
        """Each product's stock and state, from the product tables."""
        rows = self._query("SELECT id, stock, state FROM products")
        return {pid: (int(stock), int(state)) for pid, stock, state in rows}

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.root / 'p' / 'product.db'}?mode=ro", uri=True)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()


def latencies_ms(world: World, sellers: list[Seller]) -> list[float]:
    """Per seller: DeleteUser returned -> the last of their products DELISTED (ms), sorted."""
    at = world.delisted_at()
    return sorted(
        (max(at[p] for p in s.products) - s.deleted_ns) / 1e6 for s in sellers if s.products
    )


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of sorted ``values`` (nearest rank)."""
    return values[min(len(values) - 1, int(q * len(values)))]


def _found(registry: Process) -> tuple[str, ...]:
    return ("--registry", registry.address, "--registry-ttl-s", "30")
