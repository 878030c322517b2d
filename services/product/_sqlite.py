"""The product store on the embedded SQLite database (one ``product.db`` per data dir).

Reads run inline on the event loop; every mutation is one short
``BEGIN IMMEDIATE`` transaction on the database's writer thread; List pages
above :data:`INLINE_PAGE_LIMIT` rows are read on the reader thread (the
numbers behind both choices are in :mod:`services.runtime.storage`). What is
the same for every service store (opening, idempotent writes, pages,
watches) is :class:`services.runtime.storage.SqliteStore`; this module holds
the product's SQL, rows and rules.

Stock is taken with one conditional statement inside the transaction::

    UPDATE products SET stock = stock - :q ... WHERE id = :id AND stock >= :q

so no interleaving of callers, threads or processes can drive it below 0
(the ``CHECK (stock >= 0)`` of the table backs this up), and the
reservation row, the event and the stored response commit with it or not at
all: a retried ReserveStock finds its response and reserves nothing more.

Example::

    store = SqliteProductStore.open(Path("var"))
    reply = await store.reserve_stock(product_id, 1, key)
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator

from google.protobuf.message import Message

from services.product._schema import DATABASE_FILE, MIGRATIONS
from services.product._store import ProductPage
from services.runtime.errors import AlreadyExists, FailedPrecondition
from services.runtime.storage import (
    INLINE_PAGE_LIMIT,
    RequestKey,
    SqliteStore,
    Transaction,
    check_etag,
    check_id_free,
    commit_change,
    fetch_row,
    make_etag,
    new_id,
    timestamp,
)
from switchboard.product.v1 import product_pb2
from switchboard.product.v1 import product_service_pb2 as pb

__all__ = ["INLINE_PAGE_LIMIT", "PRODUCT_TYPE", "RESERVATION_TYPE", "SqliteProductStore"]

PRODUCT_TYPE = "switchboard.product.v1.Product"
RESERVATION_TYPE = "switchboard.product.v1.Reservation"

# Whole statements, spelled out: no SQL is assembled from pieces at run time.
_INSERT = (
    "INSERT INTO products (sku, name, description, currency_code, amount_minor, stock,"
    " seller_id, id, create_time_ns, update_time_ns, revision)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE = (
    "UPDATE products SET sku = ?, name = ?, description = ?, currency_code = ?,"
    " amount_minor = ?, stock = ?, seller_id = ?, update_time_ns = ?, revision = ? WHERE id = ?"
)
_SELECT_ONE = (
    "SELECT id, sku, name, description, currency_code, amount_minor, stock, seller_id,"
    " create_time_ns, update_time_ns, revision FROM products WHERE id = ?"
)
_SELECT_PAGE = (
    "SELECT id, sku, name, description, currency_code, amount_minor, stock, seller_id,"
    " create_time_ns, update_time_ns, revision FROM products"
    " WHERE id > ? ORDER BY id LIMIT ?"
)
_SELECT_SELLER_PAGE = (
    "SELECT id, sku, name, description, currency_code, amount_minor, stock, seller_id,"
    " create_time_ns, update_time_ns, revision FROM products"
    " WHERE seller_id = ? AND id > ? ORDER BY id LIMIT ?"
)
_TAKE_STOCK = (
    "UPDATE products SET stock = stock - ?, update_time_ns = ?, revision = ?"
    " WHERE id = ? AND stock >= ?"
)
_RETURN_STOCK = (
    "UPDATE products SET stock = stock + ?, update_time_ns = ?, revision = ? WHERE id = ?"
)
_INSERT_RESERVATION = (
    "INSERT INTO reservations (id, product_id, quantity, state, create_time_ns)"
    " VALUES (?, ?, ?, ?, ?)"
)
_SELECT_RESERVATION = (
    "SELECT id, product_id, quantity, state, create_time_ns FROM reservations WHERE id = ?"
)
_RELEASE = "UPDATE reservations SET state = ? WHERE id = ? AND state = ?"
_COUNT_ACTIVE = "SELECT count(*) FROM reservations WHERE product_id = ? AND state = ?"
_SKU_OWNER = "SELECT id FROM products WHERE sku = ?"

_ProductRow = tuple[str, str, str, str, str, int, int, str, int, int, int]
_ET = product_pb2.ProductEventType
_ACTIVE = product_pb2.RESERVATION_STATE_ACTIVE
_RELEASED = product_pb2.RESERVATION_STATE_RELEASED


class SqliteProductStore(SqliteStore):
    """:class:`services.product.ProductStore` on one SQLite file (``<data dir>/product.db``)."""

    DATABASE_FILE = DATABASE_FILE
    MIGRATIONS = MIGRATIONS

    async def create_product(
        self, product: product_pb2.Product, key: RequestKey | None, product_id: str = ""
    ) -> pb.CreateProductResponse:
        return await self.write_once(
            key, pb.CreateProductResponse, lambda tx: _create(tx, product, key, product_id)
        )

    async def get_product(self, product_id: str) -> product_pb2.Product:
        return _product_of(_fetch(self.db.conn, product_id))

    async def list_products(self, seller_id: str, after_id: str | None, limit: int) -> ProductPage:
        query, params = (_SELECT_SELLER_PAGE, (seller_id,)) if seller_id else (_SELECT_PAGE, ())
        return ProductPage(*await self.read_page(query, params, after_id, limit, _product_of))

    async def update_product(
        self, product: product_pb2.Product, paths: frozenset[str], key: RequestKey | None
    ) -> pb.UpdateProductResponse:
        return await self.write_once(
            key, pb.UpdateProductResponse, lambda tx: _update(tx, product, paths, key)
        )

    async def delete_product(
        self, product_id: str, etag: str, key: RequestKey | None
    ) -> pb.DeleteProductResponse:
        return await self.write_once(
            key, pb.DeleteProductResponse, lambda tx: _delete(tx, product_id, etag, key)
        )

    async def reserve_stock(
        self, product_id: str, quantity: int, key: RequestKey | None
    ) -> pb.ReserveStockResponse:
        return await self.write_once(
            key, pb.ReserveStockResponse, lambda tx: _reserve(tx, product_id, quantity, key)
        )

    async def release_stock(
        self, reservation_id: str, key: RequestKey | None
    ) -> pb.ReleaseStockResponse:
        return await self.write_once(
            key, pb.ReleaseStockResponse, lambda tx: _release(tx, reservation_id, key)
        )

    def watch_products(self, start_revision: int) -> AsyncIterator[product_pb2.ProductEvent]:
        return self.watch(start_revision, product_pb2.ProductEvent)


# --- transactions (run on the writer thread, after the request key was checked) ----------


def _create(
    tx: Transaction, product: product_pb2.Product, key: RequestKey | None, chosen_id: str
) -> pb.CreateProductResponse:
    if chosen_id:
        reason = "PRODUCT_ALREADY_EXISTS"
        check_id_free(tx.conn, _SELECT_ONE, chosen_id, resource_type=PRODUCT_TYPE, reason=reason)
    _check_sku_free(tx.conn, product.sku, owner_id=None)
    product_id = chosen_id or new_id()
    row = (*_fields(product), product_id, tx.now_ns, tx.now_ns, tx.revision)
    tx.conn.execute(_INSERT, row)
    created = _product_of(_fetch(tx.conn, product_id))
    response = pb.CreateProductResponse(product=created)
    _commit(tx, key, _ET.PRODUCT_EVENT_TYPE_CREATED, created, response)
    return response


def _update(
    tx: Transaction, product: product_pb2.Product, paths: frozenset[str], key: RequestKey | None
) -> pb.UpdateProductResponse:
    current = _checked(tx.conn, product.id, product.etag)
    if "sku" in paths:
        _check_sku_free(tx.conn, product.sku, owner_id=current.id)
    merged = _merged(current, product, paths)
    tx.conn.execute(_UPDATE, (*_fields(merged), tx.now_ns, tx.revision, current.id))
    updated = _product_of(_fetch(tx.conn, current.id))
    response = pb.UpdateProductResponse(product=updated)
    _commit(tx, key, _ET.PRODUCT_EVENT_TYPE_UPDATED, updated, response)
    return response


def _delete(
    tx: Transaction, product_id: str, etag: str, key: RequestKey | None
) -> pb.DeleteProductResponse:
    current = _checked(tx.conn, product_id, etag)
    active = tx.conn.execute(_COUNT_ACTIVE, (product_id, _ACTIVE)).fetchone()[0]
    if active:
        raise FailedPrecondition(
            f"product {product_id!r} has {active} active reservation(s): release them first",
            reason="ACTIVE_RESERVATIONS",
            metadata={"product_id": product_id, "active_reservations": str(active)},
        )
    tx.conn.execute("DELETE FROM products WHERE id = ?", (product_id,))
    response = pb.DeleteProductResponse(revision=tx.revision)
    _commit(tx, key, _ET.PRODUCT_EVENT_TYPE_DELETED, current, response)
    return response


def _reserve(
    tx: Transaction, product_id: str, quantity: int, key: RequestKey | None
) -> pb.ReserveStockResponse:
    taken = tx.conn.execute(_TAKE_STOCK, (quantity, tx.now_ns, tx.revision, product_id, quantity))
    if taken.rowcount != 1:
        raise _insufficient(_product_of(_fetch(tx.conn, product_id)), quantity)
    reservation = product_pb2.Reservation(
        id=new_id(), product_id=product_id, quantity=quantity, state=_ACTIVE
    )
    reservation.create_time.FromNanoseconds(tx.now_ns)
    row = (reservation.id, product_id, quantity, _ACTIVE, tx.now_ns)
    tx.conn.execute(_INSERT_RESERVATION, row)
    product = _product_of(_fetch(tx.conn, product_id))
    response = pb.ReserveStockResponse(reservation=reservation, product=product)
    _commit(tx, key, _ET.PRODUCT_EVENT_TYPE_STOCK_RESERVED, product, response, reservation)
    return response


def _release(
    tx: Transaction, reservation_id: str, key: RequestKey | None
) -> pb.ReleaseStockResponse:
    reservation = _fetch_reservation(tx.conn, reservation_id)
    if reservation.state == _RELEASED:  # released before: nothing changes, still a success
        product = _product_of(_fetch(tx.conn, reservation.product_id))
        return pb.ReleaseStockResponse(reservation=reservation, product=product)
    tx.conn.execute(_RELEASE, (_RELEASED, reservation_id, _ACTIVE))
    params = (reservation.quantity, tx.now_ns, tx.revision, reservation.product_id)
    tx.conn.execute(_RETURN_STOCK, params)
    reservation.state = _RELEASED
    product = _product_of(_fetch(tx.conn, reservation.product_id))
    response = pb.ReleaseStockResponse(reservation=reservation, product=product)
    _commit(tx, key, _ET.PRODUCT_EVENT_TYPE_STOCK_RELEASED, product, response, reservation)
    return response


def _commit(
    tx: Transaction,
    key: RequestKey | None,
    event_type: product_pb2.ProductEventType.ValueType,
    product: product_pb2.Product,
    response: Message,
    reservation: product_pb2.Reservation | None = None,
) -> None:
    """Append the change's ProductEvent and store the response for its request key."""
    event = product_pb2.ProductEvent(
        revision=tx.revision,
        type=event_type,
        product=product,
        reservation=reservation,
        event_time=timestamp(tx.now_ns),
    )
    kind = _ET.Name(event_type).removeprefix("PRODUCT_EVENT_TYPE_")
    commit_change(tx, key, product.id, kind, event, response)


# --- rows and checks -----------------------------------------------------------------


def _fields(product: product_pb2.Product) -> tuple[str, str, str, str, int, int, str]:
    """The client-owned columns, in the order of the INSERT and UPDATE statements."""
    price = product.price
    return (
        product.sku,
        product.name,
        product.description,
        price.currency_code,
        price.amount_minor,
        product.stock,
        product.seller_id,
    )


def _merged(
    current: product_pb2.Product, update: product_pb2.Product, paths: frozenset[str]
) -> product_pb2.Product:
    """``current`` with the fields named by ``paths`` taken from ``update``."""
    merged = product_pb2.Product()
    merged.CopyFrom(current)
    for path in paths:
        if path == "price":
            merged.price.CopyFrom(update.price)
        else:
            setattr(merged, path, getattr(update, path))
    return merged


def _product_of(row: _ProductRow) -> product_pb2.Product:
    product_id, sku, name, description, currency, amount, stock, seller, created, updated, rev = row
    product = product_pb2.Product(
        id=product_id,
        sku=sku,
        name=name,
        description=description,
        stock=stock,
        seller_id=seller,
        etag=make_etag(product_id, rev),
    )
    product.price.currency_code = currency
    product.price.amount_minor = amount
    product.create_time.FromNanoseconds(created)
    product.update_time.FromNanoseconds(updated)
    return product


def _fetch(conn: sqlite3.Connection, product_id: str) -> _ProductRow:
    """The product's row, or NotFound (PRODUCT_NOT_FOUND)."""
    row: _ProductRow = fetch_row(
        conn, _SELECT_ONE, product_id, resource_type=PRODUCT_TYPE, reason="PRODUCT_NOT_FOUND"
    )
    return row


def _fetch_reservation(conn: sqlite3.Connection, reservation_id: str) -> product_pb2.Reservation:
    """The reservation, or NotFound (RESERVATION_NOT_FOUND)."""
    reason = "RESERVATION_NOT_FOUND"
    row = fetch_row(
        conn, _SELECT_RESERVATION, reservation_id, resource_type=RESERVATION_TYPE, reason=reason
    )
    reservation_id, product_id, quantity, state, created = row
    reservation = product_pb2.Reservation(
        id=reservation_id, product_id=product_id, quantity=quantity, state=state
    )
    reservation.create_time.FromNanoseconds(created)
    return reservation


def _checked(conn: sqlite3.Connection, product_id: str, etag: str) -> product_pb2.Product:
    """The current product, after checking that ``etag`` (if given) is still current."""
    current = _product_of(_fetch(conn, product_id))
    check_etag("product", product_id, etag, current.etag)
    return current


def _check_sku_free(conn: sqlite3.Connection, sku: str, owner_id: str | None) -> None:
    """AlreadyExists unless no product but ``owner_id`` has this SKU."""
    row = conn.execute(_SKU_OWNER, (sku,)).fetchone()
    if row is not None and row[0] != owner_id:
        raise AlreadyExists(
            f"a product with SKU {sku!r} already exists",
            resource_type=PRODUCT_TYPE,
            resource_name=sku,
            reason="SKU_ALREADY_EXISTS",
        )


def _insufficient(product: product_pb2.Product, quantity: int) -> FailedPrecondition:
    return FailedPrecondition(
        f"product {product.id!r} has {product.stock} unit(s) in stock; {quantity} requested",
        reason="INSUFFICIENT_STOCK",
        metadata={
            "product_id": product.id,
            "available": str(product.stock),
            "requested": str(quantity),
        },
    )
