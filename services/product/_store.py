"""The product store: ``products`` and ``reservations`` on the shared resource-store skeleton.

The standard methods (create, get, list, update, delete, watch, idempotent
retries, one transaction per change with its event) are
:class:`services.runtime.storage.ResourceStore`, on SQLite or PostgreSQL
alike. What is the product's own: its columns, the unique SKU, the list by
seller, delete refused while reservations are active, and stock.

Stock is taken with one conditional statement inside the transaction::

    UPDATE products SET stock = stock - :q ... WHERE id = :id AND stock >= :q

so no interleaving of callers, threads, processes or instances sharing the
database can drive it below 0 (the table's ``CHECK (stock >= 0)`` backs
this up), and the reservation row, the event and the stored response commit
with it or not at all: a retried ReserveStock finds its response and
reserves nothing more.

Example::

    store = ProductStore.open(Path("var"))            # or "postgresql://..."
    reply = await store.reserve_stock(product_id, 1, key)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.product._schema import DATABASE_FILE, MIGRATIONS
from services.runtime.errors import FailedPrecondition
from services.runtime.storage import (
    Connection,
    Page,
    RequestKey,
    ResourceStore,
    ResourceTable,
    Transaction,
    Unique,
    fetch_row,
    new_id,
    timestamp,
)
from switchboard.product.v1 import product_pb2
from switchboard.product.v1 import product_service_pb2 as pb

__all__ = [
    "PRODUCTS",
    "PRODUCT_TYPE",
    "RESERVATION_TYPE",
    "ProductStore",
    "SqliteProductStore",
    "delist_seller",
]

RESERVATION_TYPE = product_pb2.Reservation.DESCRIPTOR.full_name


def _columns(product: product_pb2.Product) -> tuple[Any, ...]:
    price = product.price
    state = product.state or _ON_SALE  # a new product (its state is output only) is ACTIVE
    return (product.sku, product.name, product.description, price.currency_code,
            price.amount_minor, product.stock, product.seller_id, state)  # fmt: skip


def _set_columns(product: product_pb2.Product, values: Sequence[Any]) -> None:
    product.sku, product.name, product.description = values[:3]
    product.price.currency_code, product.price.amount_minor = values[3:5]
    product.stock, product.seller_id, product.state = values[5:]


PRODUCTS = ResourceTable(
    message=product_pb2.Product,
    event=product_pb2.ProductEvent,
    table="products",
    columns=(
        "sku",
        "name",
        "description",
        "currency_code",
        "amount_minor",
        "stock",
        "seller_id",
        "state",
    ),  # fmt: skip
    to_columns=_columns,
    from_columns=_set_columns,
    unique=(Unique("sku", "sku", "SKU_ALREADY_EXISTS"),),
)
PRODUCT_TYPE = PRODUCTS.type_name

# Statements are fixed when the module loads: none is assembled per call.
_SELECT_SELLER_PAGE = PRODUCTS.select_page.replace("WHERE", "WHERE seller_id = ? AND")
_SELECT_STATE_PAGE = PRODUCTS.select_page.replace("WHERE", "WHERE state = ? AND")
_SELECT_SELLER_STATE_PAGE = PRODUCTS.select_page.replace(
    "WHERE", "WHERE seller_id = ? AND state = ? AND"
)
_TAKE_STOCK = (
    "UPDATE products SET stock = stock - ?, update_time_ns = ?, revision = ?"
    " WHERE id = ? AND stock >= ? AND state = ?"
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
_SELLER_ON_SALE = "SELECT id FROM products WHERE seller_id = ? AND state = ? ORDER BY id"
_ACTIVE_RESERVATIONS = (
    "SELECT id FROM reservations WHERE product_id = ? AND state = ? ORDER BY create_time_ns, id"
)
_SET_STATE = "UPDATE products SET state = ?, update_time_ns = ?, revision = ? WHERE id = ?"
_COUNT_ACTIVE = "SELECT count(*) FROM reservations WHERE product_id = ? AND state = ?"

_ACTIVE = product_pb2.RESERVATION_STATE_ACTIVE
_RELEASED = product_pb2.RESERVATION_STATE_RELEASED
_ON_SALE = product_pb2.PRODUCT_STATE_ACTIVE
_DELISTED = product_pb2.PRODUCT_STATE_DELISTED


class ProductStore(ResourceStore[product_pb2.Product]):
    """Durable products, reservations and their change log (``product.db`` or PostgreSQL)."""

    DATABASE_FILE = DATABASE_FILE
    MIGRATIONS = MIGRATIONS
    TABLE = PRODUCTS

    async def list_by_seller(
        self, seller_id: str, after_id: str | None, limit: int, state: int = 0
    ) -> Page[product_pb2.Product]:
        """Up to ``limit`` products of ``seller_id`` (all when empty) in ``state`` (any when
        0) after ``after_id``."""
        params: tuple[Any, ...]
        if seller_id and state:
            query, params = _SELECT_SELLER_STATE_PAGE, (seller_id, state)
        elif seller_id:
            query, params = _SELECT_SELLER_PAGE, (seller_id,)
        elif state:
            query, params = _SELECT_STATE_PAGE, (state,)
        else:
            return await self.list(after_id, limit)
        return await self.list_where(query, params, after_id, limit)

    async def delete_product(
        self, product_id: str, etag: str, key: RequestKey | None
    ) -> pb.DeleteProductResponse:
        """Delete a product without active reservations (etag checked if non-empty)."""
        return await self.delete(product_id, etag, key, pb.DeleteProductResponse, _no_active)

    async def reserve_stock(
        self, product_id: str, quantity: int, key: RequestKey | None
    ) -> pb.ReserveStockResponse:
        """Take ``quantity`` units out of stock into a new active reservation."""
        return await self.write_once(
            key, pb.ReserveStockResponse, lambda tx: _reserve(tx, product_id, quantity, key)
        )

    async def release_stock(
        self, reservation_id: str, key: RequestKey | None
    ) -> pb.ReleaseStockResponse:
        """Put an active reservation's units back (a released one: no change, success)."""
        return await self.write_once(
            key, pb.ReleaseStockResponse, lambda tx: _release(tx, reservation_id, key)
        )


SqliteProductStore = ProductStore
"""The store's former name (it serves PostgreSQL too now), kept for callers outside this package."""


# --- transactions (one each, after the request key was checked) ---------------------------


def _no_active(conn: Connection, product: product_pb2.Product) -> None:
    """FailedPrecondition (ACTIVE_RESERVATIONS) while the product has active reservations."""
    active = conn.execute(_COUNT_ACTIVE, (product.id, _ACTIVE)).fetchone()[0]
    if active:
        raise FailedPrecondition(
            f"product {product.id!r} has {active} active reservation(s): release them first",
            reason="ACTIVE_RESERVATIONS",
            metadata={"product_id": product.id, "active_reservations": str(active)},
        )


def _reserve(
    tx: Transaction, product_id: str, quantity: int, key: RequestKey | None
) -> pb.ReserveStockResponse:
    params = (quantity, tx.now_ns, tx.revision, product_id, quantity, _ON_SALE)
    if tx.conn.execute(_TAKE_STOCK, params).rowcount != 1:
        product = PRODUCTS.fetch(tx.conn, product_id)
        raise _delisted(product) if product.state == _DELISTED else _insufficient(product, quantity)
    reservation = product_pb2.Reservation(
        id=new_id(), product_id=product_id, quantity=quantity, state=_ACTIVE
    )
    reservation.create_time.FromNanoseconds(tx.now_ns)
    row = (reservation.id, product_id, quantity, _ACTIVE, tx.now_ns)
    tx.conn.execute(_INSERT_RESERVATION, row)
    product = PRODUCTS.fetch(tx.conn, product_id)
    response = pb.ReserveStockResponse(reservation=reservation, product=product)
    PRODUCTS.commit(tx, key, "STOCK_RESERVED", product, response, reservation=reservation)
    return response


def _release(
    tx: Transaction, reservation_id: str, key: RequestKey | None
) -> pb.ReleaseStockResponse:
    reservation = _fetch_reservation(tx.conn, reservation_id)
    if reservation.state == _RELEASED:  # released before: nothing changes, still a success
        product = PRODUCTS.fetch(tx.conn, reservation.product_id)
        return pb.ReleaseStockResponse(reservation=reservation, product=product)
    tx.conn.execute(_RELEASE, (_RELEASED, reservation_id, _ACTIVE))
    params = (reservation.quantity, tx.now_ns, tx.revision, reservation.product_id)
    tx.conn.execute(_RETURN_STOCK, params)
    reservation.state = _RELEASED
    product = PRODUCTS.fetch(tx.conn, reservation.product_id)
    response = pb.ReleaseStockResponse(reservation=reservation, product=product)
    PRODUCTS.commit(tx, key, "STOCK_RELEASED", product, response, reservation=reservation)
    return response


def delist_seller(tx: Transaction, seller_id: str) -> int:
    """Delist every ACTIVE product of ``seller_id`` in ``tx``; returns how many.

    Each product's active reservations are released first (a STOCK_RELEASED
    event each, stock restored), then the product is DELISTED (one event):
    every change gets its own revision (:meth:`Transaction.next_event`). A
    product already DELISTED is left alone, so running it twice changes nothing.
    Example: ``await store.db.write(lambda tx: delist_seller(tx, user_id))``.
    """
    products = tx.conn.execute(_SELLER_ON_SALE, (seller_id, _ON_SALE)).fetchall()
    for (product_id,) in products:
        held = tx.conn.execute(_ACTIVE_RESERVATIONS, (product_id, _ACTIVE)).fetchall()
        for (reservation_id,) in held:
            tx.next_event()
            _release(tx, reservation_id, None)
        tx.next_event()
        tx.conn.execute(_SET_STATE, (_DELISTED, tx.now_ns, tx.revision, product_id))
        product = PRODUCTS.fetch(tx.conn, product_id)
        event = product_pb2.ProductEvent(
            revision=tx.revision,
            type=product_pb2.PRODUCT_EVENT_TYPE_DELISTED,
            product=product,
            event_time=timestamp(tx.now_ns),
        )
        tx.append_event(product_id, "DELISTED", event.SerializeToString())
    return len(products)


def _fetch_reservation(conn: Connection, reservation_id: str) -> product_pb2.Reservation:
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


def _delisted(product: product_pb2.Product) -> FailedPrecondition:
    return FailedPrecondition(
        f"product {product.id!r} is delisted (its seller was deleted)",
        reason="PRODUCT_DELISTED",
        metadata={"product_id": product.id, "seller_id": product.seller_id},
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
