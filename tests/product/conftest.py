"""Fixtures: a product store on each backend (SQLite in a temp data dir, a fresh PostgreSQL
database) and a fake seller directory, served in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc.aio
import pytest

from harness import Launcher, PostgresServer, StartProcess, shared_postgres, start_server
from services.product import PAGE_TOKEN_SECRET, ProductStore, product_service
from switchboard.product.v1 import product_service_pb2_grpc
from tests.product._support import FakeSellers

if TYPE_CHECKING:
    from switchboard.product.v1.product_service_pb2_grpc import ProductServiceAsyncStub


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
def start_process(launcher: Launcher) -> StartProcess:
    return launcher.start
