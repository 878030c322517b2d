"""Fixtures: a product store on each backend (SQLite in a temp data dir, a fresh PostgreSQL
database) and a fake seller directory, served in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc.aio
import pytest

from harness import Launcher, PostgresServer, StartProcess, shared_postgres, start_server
from services.product import PAGE_TOKEN_SECRET, ProductStore, product_service
from services.runtime import SwitchboardError
from switchboard.product.v1 import product_pb2, product_service_pb2, product_service_pb2_grpc

if TYPE_CHECKING:
    from switchboard.product.v1.product_service_pb2_grpc import ProductServiceAsyncStub

WAIT = 5.0
"""Bound on every single call or wait in these tests (seconds)."""

SELLER = "0190aaaaaaaaaaaaaaaaaaaaaaaaaaaa"


class FakeSellers:
    """A :class:`SellerDirectory` with a fixed set of users, or a fixed failure."""

    def __init__(self) -> None:
        self.known = {SELLER}
        self.failure: SwitchboardError | None = None
        self.calls: list[str] = []

    async def exists(self, seller_id: str) -> bool:
        self.calls.append(seller_id)
        if self.failure is not None:
            raise self.failure
        return seller_id in self.known


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    return shared_postgres()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[ProductStore]:
    """The store on each backend: every test that uses it runs twice."""
    location: Path | str = data_dir
    if request.param == "postgres":
        location = request.getfixturevalue("postgres").create_database()
    product_store = ProductStore.open(location)
    yield product_store
    product_store.close()


@pytest.fixture
def sellers() -> FakeSellers:
    return FakeSellers()


@pytest.fixture
async def address(store: ProductStore, sellers: FakeSellers) -> AsyncIterator[str]:
    """``host:port`` of a started in-process product server (production ``create_server``)."""
    service = product_service(store, sellers, store.db.secret(PAGE_TOKEN_SECRET))
    server = await start_server([service])
    yield server.address
    store.end_watches()
    await server.stop()


@pytest.fixture
async def stub(address: str) -> AsyncIterator[ProductServiceAsyncStub]:
    async with grpc.aio.insecure_channel(address) as channel:
        yield product_service_pb2_grpc.ProductServiceStub(channel)


@pytest.fixture
async def start_process(tmp_path: Path) -> AsyncIterator[StartProcess]:
    async with Launcher(tmp_path) as launch:
        yield launch.start


def new_product(
    sku: str = "LAMP-1", stock: int = 10, seller_id: str = SELLER
) -> product_pb2.Product:
    return product_pb2.Product(
        sku=sku,
        name="Desk lamp",
        description="A lamp for a desk.",
        price=product_pb2.Money(currency_code="EUR", amount_minor=1999),
        stock=stock,
        seller_id=seller_id,
    )


async def create(
    stub: ProductServiceAsyncStub, sku: str = "LAMP-1", stock: int = 10, request_id: str = ""
) -> product_pb2.Product:
    request = product_service_pb2.CreateProductRequest(
        product=new_product(sku, stock), request_id=request_id
    )
    return (await stub.CreateProduct(request, timeout=WAIT)).product


async def reserve(
    stub: ProductServiceAsyncStub, product_id: str, quantity: int, request_id: str
) -> product_service_pb2.ReserveStockResponse:
    request = product_service_pb2.ReserveStockRequest(
        product_id=product_id, quantity=quantity, request_id=request_id
    )
    return await stub.ReserveStock(request, timeout=WAIT)


async def read_event(watch: Any) -> product_service_pb2.WatchProductsResponse:
    """The next message of a WatchProducts stream (bounded wait)."""
    response = await asyncio.wait_for(watch.read(), WAIT)
    assert isinstance(response, product_service_pb2.WatchProductsResponse), response
    return response
