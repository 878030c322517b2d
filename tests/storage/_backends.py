"""Backend-neutral looks into a store's database, for tests that run on SQLite and PostgreSQL.

Example::

    assert await rows(store, "SELECT count(*) FROM events") == [(1,)]
    entries = await log(store)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import psycopg

from services.runtime.storage import Database, LogEntry, Store, read_events

__all__ = ["REFUSED", "count", "execute", "log", "rows", "sqlite_conn"]

REFUSED = (sqlite3.IntegrityError, psycopg.errors.IntegrityError, psycopg.errors.DataError)
"""What either backend raises for a statement that breaks a table's constraint."""


async def rows(store: Store, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Every row ``sql`` returns, as tuples, read through the store's backend."""
    return await store.db.read(
        lambda conn: [tuple(r) for r in conn.execute(sql, params).fetchall()]
    )


async def execute(store: Store, sql: str, params: Sequence[Any] = ()) -> None:
    """Run one statement in a write transaction of the store's backend."""
    await store.db.write(lambda tx: tx.conn.execute(sql, params))


async def count(store: Store, table: str) -> int:
    """How many rows ``table`` holds."""
    ((n,),) = await rows(store, f"SELECT count(*) FROM {table}")
    return int(n)


async def log(store: Store, after: int = 0, limit: int = 100_000) -> list[LogEntry]:
    """The change log after ``after``."""
    return await store.db.read(lambda conn: read_events(conn, after, limit))


def sqlite_conn(store: Store) -> sqlite3.Connection:
    """The loop's connection of a SQLite-backed store (for SQLite-only tests)."""
    assert isinstance(store.db, Database), store.db
    return store.db.conn
