"""Versioned schema migrations: an ordered list applied once each, in one transaction.

The current version lives in a ``schema_version`` table (one row). On open,
every migration whose version is above it runs, in order, inside a single
``BEGIN IMMEDIATE`` transaction together with the version bump: a crash half
way leaves the database at the old version, and two processes starting at
once on the same file take turns (the second sees the work already done).

Example::

    MIGRATIONS = (
        Migration(1, "users and the change log", ("CREATE TABLE users (...)", ...)),
        Migration(2, "index events by resource", ("CREATE INDEX ...",)),
    )
    migrate(conn, MIGRATIONS)      # -> 2
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Migration", "MigrationError", "check_order", "migrate", "schema_version"]

_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " version INTEGER NOT NULL)"
)


class MigrationError(RuntimeError):
    """The migration list is malformed, or the database is newer than this code."""


@dataclass(frozen=True)
class Migration:
    """One step of the schema: fixed SQL statements run in order (no parameters needed).

    Example: ``Migration(2, "index products by seller", ("CREATE INDEX ...",))``.
    """

    version: int
    description: str
    statements: tuple[str, ...]
    postgres: tuple[str, ...] = ()
    """The same step in PostgreSQL's dialect, when ``statements`` are SQLite-only DDL."""


def schema_version(conn: sqlite3.Connection) -> int:
    """The version the database is at; 0 for a new, empty file."""
    conn.execute(_VERSION_TABLE)
    row = conn.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
    return int(row[0]) if row is not None else 0


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> int:
    """Bring the database to the last migration's version and return that version.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Raises
    :class:`MigrationError` if the database is already at a version this code
    does not know (a newer binary wrote it): running old code on it would be unsafe.
    """
    check_order(migrations)
    target = migrations[-1].version if migrations else 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn)
        if current > target:
            raise MigrationError(f"database schema v{current} is newer than this code (v{target})")
        for migration in migrations:
            if migration.version > current:
                _apply(conn, migration)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return target


def _apply(conn: sqlite3.Connection, migration: Migration) -> None:
    """Run one migration's statements and record its version (caller holds the transaction)."""
    for statement in migration.statements:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO schema_version (id, version) VALUES (1, ?)"
        " ON CONFLICT (id) DO UPDATE SET version = excluded.version",
        (migration.version,),
    )


def check_order(migrations: Sequence[Migration]) -> None:
    """Versions must be 1, 2, 3, ... with no gap: a gap is a lost migration."""
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"migration #{expected} has version {migration.version}; expected {expected}"
            )
