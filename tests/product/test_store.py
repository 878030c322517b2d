"""The SQLite product store: event sourcing (replay == tables), migrations, invariants."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import pytest

from services.product import DATABASE_FILE, MIGRATIONS, ProductStore, delist_seller, replay
from services.runtime.errors import SwitchboardError
from services.runtime.storage import RequestKey, connect, migrate, schema_version
from switchboard.product.v1 import product_pb2
from switchboard.product.v1 import product_service_pb2 as pb
from tests.product._support import new_product
from tests.storage._backends import REFUSED, execute, log, rows, sqlite_conn


class _History:
    """Random creates, updates, deletes, reservations, releases and delistings (some refused)."""

    def __init__(self, store: ProductStore, seed: int) -> None:
        self.store = store
        self.rng = random.Random(seed)
        self.products: list[str] = []
        self.reservations: list[str] = []

    async def step(self, n: int) -> None:
        actions = [self.create, self.create, self.update, self.delete, self.reserve,
                   self.reserve, self.release, self.delist]  # fmt: skip
        action = self.rng.choice(actions) if self.products else self.create
        with contextlib.suppress(SwitchboardError):  # refused: must leave no trace behind
            await action(n)

    async def create(self, n: int) -> None:
        product = new_product(sku=f"S{self.rng.randrange(60)}", stock=self.rng.randrange(6))
        product.seller_id = f"seller-{self.rng.randrange(8)}"
        self.products.append(
            (await self.store.create(product, "", None, pb.CreateProductResponse)).product.id
        )

    async def update(self, n: int) -> None:
        change = new_product(sku=f"S{self.rng.randrange(60)}", stock=self.rng.randrange(6))
        change.id = self.rng.choice(self.products)
        paths = frozenset(self.rng.sample(["sku", "name", "stock", "price"], 2))
        await self.store.update(change, paths, None, pb.UpdateProductResponse)

    async def delete(self, n: int) -> None:
        await self.store.delete_product(self.rng.choice(self.products), "", None)

    async def reserve(self, n: int) -> None:
        product_id = self.rng.choice(self.products)
        request = product_pb2.Reservation(product_id=product_id)  # any message: a fingerprint
        key = RequestKey.of("ReserveStock", f"r{n}", request)
        reply = await self.store.reserve_stock(product_id, self.rng.randrange(1, 4), key)
        self.reservations.append(reply.reservation.id)

    async def release(self, n: int) -> None:
        if self.reservations:
            await self.store.release_stock(self.rng.choice(self.reservations), None)

    async def delist(self, n: int) -> None:
        seller = f"seller-{self.rng.randrange(8)}"
        await self.store.db.write(lambda tx: delist_seller(tx, seller))


async def _tables(store: ProductStore) -> dict[str, product_pb2.Product]:
    page = await store.list(None, 1000)
    assert not page.more
    return {product.id: product for product in page.items}


async def _reservation_rows(store: ProductStore) -> dict[str, tuple[str, int, int]]:
    found = await rows(store, "SELECT id, product_id, quantity, state FROM reservations")
    return {rid: (pid, quantity, state) for rid, pid, quantity, state in found}


async def test_replaying_the_log_rebuilds_products_and_reservations(
    store: ProductStore,
) -> None:
    history = _History(store, seed=11)
    for n in range(400):
        await history.step(n)
    events = [product_pb2.ProductEvent.FromString(e.payload) for e in await log(store)]
    state = replay(events)
    assert state.products == await _tables(store)
    replayed = {r.id: (r.product_id, r.quantity, r.state) for r in state.reservations.values()}
    assert replayed == await _reservation_rows(store)
    kinds = {event.type for event in events}
    assert product_pb2.PRODUCT_EVENT_TYPE_STOCK_RELEASED in kinds  # the history covered it all
    assert product_pb2.PRODUCT_EVENT_TYPE_DELETED in kinds
    assert product_pb2.PRODUCT_EVENT_TYPE_DELISTED in kinds


def test_a_database_at_the_previous_version_is_migrated_on_open(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    old = connect(data_dir / DATABASE_FILE)
    migrate(old, MIGRATIONS[:-1])
    old.execute(
        "INSERT INTO products (id, sku, name, description, currency_code, amount_minor, stock,"
        " seller_id, create_time_ns, update_time_ns, revision)"
        " VALUES ('p1', 'OLD-1', 'Old', '', 'EUR', 5, 2, 's1', 1, 1, 0)"
    )
    old.close()
    store = ProductStore.open(data_dir)
    try:
        conn = sqlite_conn(store)
        assert schema_version(conn) == MIGRATIONS[-1].version
        index = "SELECT name FROM sqlite_master WHERE type = 'index' AND name = ?"
        assert conn.execute(index, ("products_by_seller",)).fetchone() is not None
        assert conn.execute("SELECT sku, stock FROM products").fetchall() == [("OLD-1", 2)]
        # Products from before version 3 are on sale.
        assert conn.execute("SELECT state FROM products").fetchall() == [(1,)]
        # Nothing consumed yet: the new, empty sellers projection is complete (version 4).
        assert conn.execute("SELECT subscription FROM checkpoints").fetchall() == [
            ("product<-user/sellers",)
        ]
    finally:
        store.close()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE products SET stock = -1",
        "UPDATE products SET stock = 9223372036854775807 + 1",  # overflow: SQLite makes a REAL
        "UPDATE products SET amount_minor = -1",
        "UPDATE products SET state = 3",  # not a ProductState the service knows
        "INSERT INTO reservations VALUES ('r1', 'missing', 1, 1, 0)",
        "INSERT INTO reservations VALUES ('r1', 'p1', 0, 1, 0)",
    ],
)
async def test_the_database_guards_its_invariants(store: ProductStore, statement: str) -> None:
    await execute(
        store,
        "INSERT INTO products (id, sku, name, description, currency_code, amount_minor, stock,"
        " seller_id, create_time_ns, update_time_ns, revision)"
        " VALUES ('p1', 'A', 'A', '', 'EUR', 1, 1, 's', 1, 1, 1)",
    )
    with pytest.raises(REFUSED):
        await execute(store, statement)
