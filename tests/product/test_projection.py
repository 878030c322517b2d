"""The sellers projection on each backend: kept by the user events, asked before GetUser,
rebuilt from the user log when incomplete, and marked incomplete by a migration that
finds events already consumed.

The user events go through :func:`services.runtime.events.apply_event` (the
subscriber's transaction); the seller check runs through a real in-process
gRPC server whose fallback is a fake directory that records every call it
gets. The end-to-end path with real processes is in
``tests/events/test_seller_projection.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import grpc.aio
import pytest

from services.product import (
    DATABASE_FILE,
    MIGRATIONS,
    PAGE_TOKEN_SECRET,
    SELLERS,
    ProductStore,
    ProjectedSellers,
    SellerRebuild,
    is_built,
    product_service,
)
from services.runtime import ServerConfig, create_server
from services.runtime import errors as e
from services.runtime.events import apply_event
from services.runtime.storage import open_database, read_checkpoint, save_checkpoint
from switchboard.product.v1 import product_service_pb2 as pb
from switchboard.product.v1 import product_service_pb2_grpc
from switchboard.user.v1 import user_pb2
from tests._support import failure
from tests.product._support import SELLER, WAIT, FakeSellers, new_product
from tests.storage._backends import execute, rows

if TYPE_CHECKING:
    from switchboard.product.v1.product_service_pb2_grpc import ProductServiceAsyncStub

_T = user_pb2.UserEventType


def _event(revision: int, kind: int, user_id: str) -> user_pb2.UserEvent:
    return user_pb2.UserEvent(revision=revision, type=kind, user=user_pb2.User(id=user_id))  # type: ignore[arg-type]


def _history() -> list[user_pb2.UserEvent]:
    """ada, bob and cyd created; ada renamed; bob deleted: ada and cyd exist at revision 5."""
    return [
        _event(1, _T.USER_EVENT_TYPE_CREATED, "ada"),
        _event(2, _T.USER_EVENT_TYPE_CREATED, "bob"),
        _event(3, _T.USER_EVENT_TYPE_UPDATED, "ada"),
        _event(4, _T.USER_EVENT_TYPE_DELETED, "bob"),
        _event(5, _T.USER_EVENT_TYPE_CREATED, "cyd"),
    ]


async def _apply(store: ProductStore, event: user_pb2.UserEvent) -> bool:
    return await store.db.write(lambda tx: apply_event(tx, SELLERS, event))


async def _projected(store: ProductStore) -> set[str]:
    return {row[0] for row in await rows(store, "SELECT id FROM sellers")}


async def _built(store: ProductStore) -> bool:
    return await store.db.read(is_built)


async def _lose_projection(store: ProductStore) -> None:
    """What a database migrated after its subscription consumed events looks like."""
    await execute(store, "DELETE FROM sellers")
    await execute(
        store, "DELETE FROM checkpoints WHERE subscription = ?", (f"{SELLERS.name}/sellers",)
    )


# --- the projection, kept by the subscription -------------------------------------------------


async def test_user_events_keep_the_projection_once(store: ProductStore) -> None:
    assert await _built(store)  # a new database: empty and complete
    for event in _history():
        assert await _apply(store, event)
    assert await _projected(store) == {"ada", "cyd"}
    assert not await _apply(store, _event(2, _T.USER_EVENT_TYPE_CREATED, "bob"))  # redelivered
    assert await _projected(store) == {"ada", "cyd"}
    assert await _built(store)


async def test_a_jump_in_the_log_empties_the_projection_and_marks_it_incomplete(
    store: ProductStore,
) -> None:
    for event in _history()[:2]:
        await _apply(store, event)
    # Revisions 3 and 4 never arrive (a compacted log): bob's deletion may be among them.
    assert await _apply(store, _history()[4])
    assert await _projected(store) == {"cyd"}
    assert not await _built(store)


# --- the seller check -------------------------------------------------------------------------


@pytest.fixture
async def projected(
    store: ProductStore, sellers: FakeSellers
) -> AsyncIterator[ProductServiceAsyncStub]:
    """A product server whose seller check is the projection, then ``sellers`` on a miss."""
    check = ProjectedSellers(store.db, sellers)
    service = product_service(store, check, store.db.secret(PAGE_TOKEN_SECRET))
    server, port = create_server([service], ServerConfig(listen="127.0.0.1:0"))
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield product_service_pb2_grpc.ProductServiceStub(channel)
    store.end_watches()
    await server.stop(None)


def _create(sku: str, seller_id: str) -> pb.CreateProductRequest:
    return pb.CreateProductRequest(product=new_product(sku=sku, seller_id=seller_id))


async def test_a_projected_seller_needs_no_call(
    store: ProductStore, projected: ProductServiceAsyncStub, sellers: FakeSellers
) -> None:
    await _apply(store, _event(1, _T.USER_EVENT_TYPE_CREATED, SELLER))
    sellers.failure = e.Unavailable("the user service is down")  # and it does not matter
    created = await projected.CreateProduct(_create("P-1", SELLER), timeout=WAIT)
    assert created.product.seller_id == SELLER
    assert sellers.calls == []


async def test_a_seller_not_projected_yet_is_checked_with_the_user_service(
    projected: ProductServiceAsyncStub, sellers: FakeSellers
) -> None:
    fresh = "0190bbbbbbbbbbbbbbbbbbbbbbbbbbbb"  # created a moment ago: no event consumed yet
    sellers.known.add(fresh)
    created = await projected.CreateProduct(_create("P-1", fresh), timeout=WAIT)
    assert created.product.seller_id == fresh
    assert sellers.calls == [fresh]
    sellers.failure = e.Unavailable("the user service is down")
    down = await failure(projected.CreateProduct(_create("P-2", fresh), timeout=WAIT))
    assert isinstance(down, e.Unavailable)  # a miss cannot be decided without it


async def test_a_seller_whose_deletion_was_consumed_is_refused(
    store: ProductStore, projected: ProductServiceAsyncStub, sellers: FakeSellers
) -> None:
    await _apply(store, _event(1, _T.USER_EVENT_TYPE_CREATED, SELLER))
    await projected.CreateProduct(_create("P-1", SELLER), timeout=WAIT)
    sellers.known.discard(SELLER)  # deleted at the user service ...
    await _apply(store, _event(2, _T.USER_EVENT_TYPE_DELETED, SELLER))  # ... and consumed
    refused = await failure(projected.CreateProduct(_create("P-2", SELLER), timeout=WAIT))
    assert isinstance(refused, e.FailedPrecondition) and refused.reason == "SELLER_NOT_FOUND"
    assert sellers.calls == [SELLER]  # the miss was asked, and the user service said no


# --- the rebuild ------------------------------------------------------------------------------


class _Log:
    """A scripted user log: the events, then silence (a live stream); ``before`` runs just
    before the event of that revision is sent; ``fail_first`` fails the first read."""

    def __init__(self, events: list[user_pb2.UserEvent], fail_first: bool = False) -> None:
        self.events = events
        self.before: dict[int, Callable[[], Awaitable[object]]] = {}
        self.reads = 0
        self.fail_first = fail_first

    async def __call__(self) -> AsyncGenerator[user_pb2.UserEvent, None]:
        self.reads += 1
        if self.fail_first and self.reads == 1:
            raise e.Unavailable("the user service is restarting")
        for event in self.events:
            hook = self.before.get(event.revision)
            if hook is not None:
                await hook()
            yield event
        await asyncio.Event().wait()  # live: nothing more happens


async def _rebuild(store: ProductStore, user_log: _Log) -> SellerRebuild:
    """Run a rebuild to its end (it returns once installed), bounded."""
    rebuild = SellerRebuild(store.db, SELLERS.name, user_log, backoff_s=0.01)
    assert not await _built(store)
    await asyncio.wait_for(rebuild.run(), WAIT)
    assert await _built(store)
    return rebuild


async def test_an_incomplete_projection_is_rebuilt_from_the_user_log(store: ProductStore) -> None:
    history = _history()
    for event in history[:4]:
        await _apply(store, event)
    await _lose_projection(store)
    rebuild = await _rebuild(store, _Log(history, fail_first=True))
    assert rebuild.installed_at == 4  # the subscription's checkpoint: cyd is not consumed yet
    assert await _projected(store) == {"ada"}
    assert await _apply(store, history[4])
    assert await _projected(store) == {"ada", "cyd"}


async def test_a_rebuild_reads_on_while_the_subscription_moves_ahead(store: ProductStore) -> None:
    history = _history()
    for event in history[:3]:
        await _apply(store, event)
    await _lose_projection(store)
    user_log = _Log(history)
    # While the rebuild reads revision 3, another instance applies bob's deletion (4):
    # installing as of 3 would bring bob back, so the rebuild must read on.
    user_log.before[3] = lambda: _apply(store, history[3])
    rebuild = await _rebuild(store, user_log)
    assert rebuild.installed_at == 4
    assert await _projected(store) == {"ada"}
    assert await store.db.read(lambda conn: read_checkpoint(conn, SELLERS.name)) == 4


async def test_a_complete_projection_is_not_rebuilt(store: ProductStore) -> None:
    await _apply(store, _history()[0])
    user_log = _Log(_history())
    rebuild = SellerRebuild(store.db, SELLERS.name, user_log)
    await rebuild.started(0)
    await rebuild.stopping()
    assert user_log.reads == 0 and rebuild.installed_at is None


# --- the migration ----------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, data_dir: Path) -> Path | str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres").create_database()
        return url
    data_dir.mkdir(parents=True)
    return data_dir


@pytest.mark.parametrize("consumed", [0, 7])
async def test_a_migrated_database_is_complete_only_if_nothing_was_consumed(
    location: Path | str, consumed: int
) -> None:
    old = open_database(location, DATABASE_FILE, MIGRATIONS[:3])  # before the projection
    try:
        if consumed:
            await old.write(lambda tx: save_checkpoint(tx.conn, SELLERS.name, consumed, 1))
    finally:
        old.close()
    store = ProductStore.open(location)
    try:
        assert await _built(store) is (consumed == 0)
        assert await _projected(store) == set()
    finally:
        store.close()
