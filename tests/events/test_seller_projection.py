"""End to end, real processes, on each backend: the seller check answered from product's
projection of the user log.

What is proved with the user service's own metrics (its count of GetUser
calls handled) and by stopping it: a seller in the projection costs no
GetUser; a seller the projection misses is checked with GetUser; a seller
whose deletion was consumed is refused; a restarted product resumes the
projection from its checkpoint; an incomplete projection is rebuilt from the
user log. The test reads and pokes product's database as one more instance
on it (:class:`ProductStore`), as a second product process would.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import grpc.aio
import pytest

from harness import Launcher, Process, shared_postgres
from services.product import SELLERS, ProductStore, is_built
from services.runtime import errors as e
from services.runtime.storage import read_checkpoint
from switchboard.product.v1 import product_pb2, product_service_pb2_grpc
from switchboard.product.v1 import product_service_pb2 as pb
from switchboard.user.v1 import user_pb2, user_service_pb2, user_service_pb2_grpc
from tests._support import failure
from tests.observability._support import http_address, sample, scrape
from tests.storage._backends import execute, rows

if TYPE_CHECKING:
    from switchboard.product.v1.product_service_pb2_grpc import ProductServiceAsyncStub
    from switchboard.user.v1.user_service_pb2_grpc import UserServiceAsyncStub

T = TypeVar("T")

CALL_S = 5.0
"""Bound on each call (seconds)."""
CATCH_UP_S = 30.0
"""Bound on waiting for the consumer (well under a second unloaded; the machine is shared)."""


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where product keeps its data: a data dir, or a fresh PostgreSQL database."""
    if request.param == "postgres":
        return shared_postgres().create_database()
    return tmp_path / "p"


class _World:
    """Registry, user service and one product process; typed calls; product's database."""

    def __init__(self, user: Process, product: Process, store: ProductStore) -> None:
        self.user, self.product, self.store = user, product, store

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls, launch: Launcher, root: Path, location: Path | str
    ) -> AsyncIterator[_World]:
        """The processes, and product's database opened by the test (closed at the end)."""
        registry = await launch.start("registry")
        found = ("--registry", registry.address, "--registry-ttl-s", "30")
        user = await launch.start("services.user", "--data-dir", str(root / "u"), *found)
        at = (
            ("--database-url", location)
            if isinstance(location, str)
            else ("--data-dir", str(location))
        )
        product = await launch.start("services.product", *at, *found)
        store = ProductStore.open(location)  # after product migrated it
        try:
            yield cls(user, product, store)
        finally:
            store.close()

    @contextlib.asynccontextmanager
    async def stubs(self) -> AsyncIterator[tuple[UserServiceAsyncStub, ProductServiceAsyncStub]]:
        """A user stub and a product stub on their own channels."""
        async with (
            grpc.aio.insecure_channel(self.user.address) as uc,
            grpc.aio.insecure_channel(self.product.address) as pc,
        ):
            users = user_service_pb2_grpc.UserServiceStub(uc)
            yield users, product_service_pb2_grpc.ProductServiceStub(pc)

    async def create_user(self, users: UserServiceAsyncStub, name: str) -> str:
        user = user_pb2.User(email=f"{name}@example.com", display_name=name)
        request = user_service_pb2.CreateUserRequest(user=user)
        return (await users.CreateUser(request, timeout=CALL_S)).user.id

    async def delete_user(self, users: UserServiceAsyncStub, user_id: str) -> int:
        request = user_service_pb2.DeleteUserRequest(id=user_id)
        return (await users.DeleteUser(request, timeout=CALL_S)).revision

    async def projected(self) -> set[str]:
        return {row[0] for row in await rows(self.store, "SELECT id FROM sellers")}

    async def checkpoint(self) -> int:
        return await self.store.db.read(lambda conn: read_checkpoint(conn, SELLERS.name))

    async def get_user_calls(self) -> float:
        """GetUser calls the user service has handled (all codes)."""
        text = await scrape(http_address(self.user))
        total = 0.0
        for code in ("OK", "NOT_FOUND"):
            got = sample(text, "grpc_server_handled_total", grpc_method="GetUser", grpc_code=code)
            total += got or 0.0
        return total

    async def product_metric(self, name: str, **labels: str) -> float:
        return sample(await scrape(http_address(self.product)), name, **labels) or 0.0


async def _eventually(probe: Callable[[], Awaitable[T]], check: Callable[[T], bool]) -> T:
    deadline = time.monotonic() + CATCH_UP_S
    value = await probe()
    while not check(value):
        assert time.monotonic() < deadline, f"not within {CATCH_UP_S} s: last {value!r}"
        await asyncio.sleep(0.02)  # polling product's database: no event reaches the test
        value = await probe()
    return value


def _create(sku: str, seller_id: str) -> pb.CreateProductRequest:
    product = product_pb2.Product(
        sku=sku, name="Lamp", stock=3, seller_id=seller_id,
        price=product_pb2.Money(currency_code="EUR", amount_minor=100),
    )  # fmt: skip
    return pb.CreateProductRequest(product=product)


async def test_the_seller_check_is_answered_from_the_projection(
    tmp_path: Path, location: Path | str
) -> None:
    async with (
        Launcher(tmp_path) as launch,
        _World.start(launch, tmp_path, location) as world,
        world.stubs() as (users, products),
    ):
        ada, bob, cyd = [await world.create_user(users, n) for n in ("ada", "bob", "cyd")]
        await _eventually(world.projected, lambda ids: ids == {ada, bob, cyd})
        asked = await world.get_user_calls()

        # In the projection: no GetUser.
        for n in range(20):
            await products.CreateProduct(_create(f"ADA-{n}", ada), timeout=CALL_S)
        assert await world.get_user_calls() == asked
        checks = "switchboard_product_seller_checks_total"
        assert await world.product_metric(checks, answered_by="projection") == 20

        # Missed by the projection (as if bob's creation were not consumed yet): GetUser.
        await execute(world.store, "DELETE FROM sellers WHERE id = ?", (bob,))
        await products.CreateProduct(_create("BOB-1", bob), timeout=CALL_S)
        assert await world.get_user_calls() == asked + 1
        assert await world.product_metric(checks, answered_by="user_service") == 1

        # Deleted, the deletion consumed: gone from the projection, and GetUser says so.
        deleted_at = await world.delete_user(users, ada)
        await _eventually(world.checkpoint, lambda at: at >= deleted_at)
        refused = await failure(products.CreateProduct(_create("ADA-X", ada), timeout=CALL_S))
        assert isinstance(refused, e.FailedPrecondition)
        assert refused.reason == "SELLER_NOT_FOUND"
        assert await world.get_user_calls() == asked + 2

        # The user service gone: a projected seller is still checked (no call to make).
        world.user.kill()
        await world.user.wait_exit()
        created = await products.CreateProduct(_create("CYD-1", cyd), timeout=CALL_S)
        assert created.product.seller_id == cyd


async def test_a_restart_resumes_and_an_incomplete_projection_is_rebuilt(
    tmp_path: Path, location: Path | str
) -> None:
    async with Launcher(tmp_path) as launch, _World.start(launch, tmp_path, location) as world:
        async with world.stubs() as (users, _):
            ids = [await world.create_user(users, f"u{n}") for n in range(10)]
            for user_id in ids[:3]:
                head = await world.delete_user(users, user_id)
            await _eventually(world.checkpoint, lambda at: at >= head)
            assert await world.projected() == set(ids[3:])

        # Down while users come and go; on restart it resumes after its checkpoint.
        assert await world.product.stop() == 0
        async with world.stubs() as (users, _):
            ids += [await world.create_user(users, f"u{n}") for n in (10, 11)]
            head = await world.delete_user(users, ids[3])
        await world.product.restart()
        await _eventually(world.checkpoint, lambda at: at >= head)
        assert await world.projected() == set(ids[4:])
        applied = "switchboard_subscription_events_total"
        assert await world.product_metric(applied, outcome="applied") == 3  # not a replay

        # The projection lost (a database migrated after consuming): rebuilt from the log.
        assert await world.product.stop() == 0
        await execute(world.store, "DELETE FROM sellers")
        built = f"{SELLERS.name}/sellers"
        await execute(world.store, "DELETE FROM checkpoints WHERE subscription = ?", (built,))
        assert not await world.store.db.read(is_built)
        await world.product.restart()
        await _eventually(lambda: world.store.db.read(is_built), bool)
        assert await world.projected() == set(ids[4:])
        assert "sellers projection rebuilt at revision" in world.product.log()
        async with world.stubs() as (_, products):
            asked = await world.get_user_calls()
            await products.CreateProduct(_create("U4-1", ids[4]), timeout=CALL_S)
            assert await world.get_user_calls() == asked
