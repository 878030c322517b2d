"""Fixtures: a user store on each backend (SQLite in a temp data dir, a fresh PostgreSQL
database), served in-process on port 0 by the real factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc.aio
import pytest

from harness import Launcher, PostgresServer, StartProcess, shared_postgres, start_server
from services.user import PAGE_TOKEN_SECRET, UserStore, user_service
from switchboard.user.v1 import user_service_pb2_grpc

if TYPE_CHECKING:
    from switchboard.user.v1.user_service_pb2_grpc import UserServiceAsyncStub


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    return shared_postgres()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[UserStore]:
    """The store on each backend: every test that uses it runs twice."""
    location: Path | str = data_dir
    if request.param == "postgres":
        location = request.getfixturevalue("postgres").create_database()
    user_store = UserStore.open(location)
    yield user_store
    user_store.close()


@pytest.fixture
async def address(store: UserStore) -> AsyncIterator[str]:
    """``host:port`` of a started in-process user server (production ``create_server``)."""
    service = user_service(store, store.db.secret(PAGE_TOKEN_SECRET))
    server = await start_server([service])
    yield server.address
    store.end_watches()
    await server.stop()


@pytest.fixture
async def stub(address: str) -> AsyncIterator[UserServiceAsyncStub]:
    async with grpc.aio.insecure_channel(address) as channel:
        yield user_service_pb2_grpc.UserServiceStub(channel)


@pytest.fixture
def start_process(launcher: Launcher) -> StartProcess:
    return launcher.start
