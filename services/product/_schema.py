"""The product database's schema, as an ordered list of migrations.

Version 1: the core tables (``events``, ``requests``, ``secrets``),
``products`` and ``reservations``. The database itself guards the
invariants the service promises: SKUs are UNIQUE, ``stock`` and the price
are integers that are never negative (``typeof`` also refuses the REAL that
SQLite would silently produce on an integer overflow), and a reservation
belongs to an existing product (deleted with it).

Version 2: index the change log by resource, and products by seller (for
``ListProducts`` with a ``seller_id`` filter).

Version 3: a product's ``state`` (1 ACTIVE, 2 DELISTED; existing products
are ACTIVE), indexed with the seller (the delisting finds a seller's products
on sale), and the ``checkpoints`` table of the subscription to the user
service's change log (:mod:`services.product._delist`).

Version 4: the projection of existing sellers (``sellers``: user ids only,
:mod:`services.product._projection`). A database whose subscription has
consumed nothing gets it marked complete (empty is right); one that has
consumed events gets it unmarked, and the service rebuilds it from the user
log on start.

Each migration that SQLite and PostgreSQL spell differently gives its
PostgreSQL form too (``BIGINT`` refuses an overflow itself, so no ``typeof``
check; ids compare byte-wise, ``COLLATE "C"``, as in SQLite).

Add a migration by appending ``Migration(5, ...)``; never edit a shipped one.
"""

from __future__ import annotations

from services.product._projection import (
    MARK_BUILT_IF_NEW,
    POSTGRES_SELLERS_TABLE,
    SELLERS_TABLE,
)
from services.runtime.storage import (
    CHECKPOINTS_TABLE,
    CORE_TABLES,
    POSTGRES_CHECKPOINTS_TABLE,
    POSTGRES_CORE_TABLES,
    Migration,
)

__all__ = ["DATABASE_FILE", "MIGRATIONS"]

DATABASE_FILE = "product.db"

_PRODUCTS = (
    "CREATE TABLE products ("
    " id TEXT PRIMARY KEY,"
    " sku TEXT NOT NULL UNIQUE,"
    " name TEXT NOT NULL,"
    " description TEXT NOT NULL,"
    " currency_code TEXT NOT NULL,"
    " amount_minor INTEGER NOT NULL"
    "  CHECK (typeof(amount_minor) = 'integer' AND amount_minor >= 0),"
    " stock INTEGER NOT NULL CHECK (typeof(stock) = 'integer' AND stock >= 0),"
    " seller_id TEXT NOT NULL,"
    " create_time_ns INTEGER NOT NULL,"
    " update_time_ns INTEGER NOT NULL,"
    " revision INTEGER NOT NULL) WITHOUT ROWID"
)
_RESERVATIONS = (
    "CREATE TABLE reservations ("
    " id TEXT PRIMARY KEY,"
    " product_id TEXT NOT NULL REFERENCES products (id) ON DELETE CASCADE,"
    " quantity INTEGER NOT NULL CHECK (typeof(quantity) = 'integer' AND quantity >= 1),"
    " state INTEGER NOT NULL CHECK (state IN (1, 2)),"  # ReservationState ACTIVE, RELEASED
    " create_time_ns INTEGER NOT NULL) WITHOUT ROWID"
)
_POSTGRES_PRODUCTS = (
    "CREATE TABLE products ("
    ' id TEXT COLLATE "C" PRIMARY KEY,'
    " sku TEXT NOT NULL UNIQUE,"
    " name TEXT NOT NULL,"
    " description TEXT NOT NULL,"
    " currency_code TEXT NOT NULL,"
    " amount_minor BIGINT NOT NULL CHECK (amount_minor >= 0),"
    " stock BIGINT NOT NULL CHECK (stock >= 0),"
    ' seller_id TEXT COLLATE "C" NOT NULL,'
    " create_time_ns BIGINT NOT NULL,"
    " update_time_ns BIGINT NOT NULL,"
    " revision BIGINT NOT NULL)"
)
_POSTGRES_RESERVATIONS = (
    "CREATE TABLE reservations ("
    ' id TEXT COLLATE "C" PRIMARY KEY,'
    " product_id TEXT NOT NULL REFERENCES products (id) ON DELETE CASCADE,"
    " quantity BIGINT NOT NULL CHECK (quantity >= 1),"
    " state INTEGER NOT NULL CHECK (state IN (1, 2)),"
    " create_time_ns BIGINT NOT NULL)"
)
_RESERVATIONS_INDEX = "CREATE INDEX reservations_by_product ON reservations (product_id, state)"

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "products, reservations, change log, idempotency, secrets",
        (*CORE_TABLES, _PRODUCTS, _RESERVATIONS, _RESERVATIONS_INDEX),
        postgres=(
            *POSTGRES_CORE_TABLES,
            _POSTGRES_PRODUCTS,
            _POSTGRES_RESERVATIONS,
            _RESERVATIONS_INDEX,
        ),
    ),
    Migration(
        2,
        "index the change log by resource and products by seller",
        (
            "CREATE INDEX events_by_resource ON events (resource_id, revision)",
            "CREATE INDEX products_by_seller ON products (seller_id, id)",
        ),
    ),
    Migration(
        3,
        "product state (ACTIVE, DELISTED) and the subscription checkpoints",
        (
            "ALTER TABLE products ADD COLUMN state INTEGER NOT NULL DEFAULT 1"
            " CHECK (state IN (1, 2))",  # ProductState ACTIVE, DELISTED
            "CREATE INDEX products_by_seller_state ON products (seller_id, state, id)",
            CHECKPOINTS_TABLE,
        ),
        postgres=(
            "ALTER TABLE products ADD COLUMN state INTEGER NOT NULL DEFAULT 1"
            " CHECK (state IN (1, 2))",
            "CREATE INDEX products_by_seller_state ON products (seller_id, state, id)",
            POSTGRES_CHECKPOINTS_TABLE,
        ),
    ),
    Migration(
        4,
        "the projection of existing sellers (user ids)",
        (SELLERS_TABLE, MARK_BUILT_IF_NEW),
        postgres=(POSTGRES_SELLERS_TABLE, MARK_BUILT_IF_NEW),
    ),
)
