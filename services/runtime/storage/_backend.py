"""What a store needs from a database, whichever it is: the backend interface.

Two backends implement it: :class:`services.runtime.storage.Database`
(one SQLite file, the embedded default) and
:class:`services.runtime.storage.PostgresDatabase` (a PostgreSQL database
shared by several instances). A store's code is written once against
:class:`Backend`: plain synchronous functions of a :class:`Connection`
(``execute(sql, params)`` with ``?`` placeholders; the PostgreSQL backend
translates them) run either as a read or inside one write
:class:`Transaction`.

The promises every backend keeps:

- :meth:`Backend.write` runs its function in ONE transaction that no other
  write transaction interleaves with (SQLite's write lock; PostgreSQL's
  revision counter row, locked first): checks made inside it still hold at
  commit, and revisions are taken gap-free and commit in revision order.
  SQLite may commit several waiting writes in one transaction (group
  commit): each runs alone, in its own savepoint, after the ones before it,
  and none returns before that COMMIT did.
- :attr:`Backend.changes` wakes this process's watchers after any commit to
  the change log, also one made by another process.
- A database that cannot be reached is :class:`services.runtime.errors.Unavailable`.

Example::

    db = open_database(Path("var"), "book.db", MIGRATIONS)            # SQLite
    db = open_database("postgresql://127.0.0.1/sb", "book.db", MIGRATIONS)
    row = await db.read(lambda conn: conn.execute("SELECT 1").fetchone())
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from services.runtime.storage._events import ChangeFeed, append_event
from services.runtime.storage._migrations import Migration

__all__ = [
    "DATABASE_URL_ENV",
    "Backend",
    "Connection",
    "Cursor",
    "Transaction",
    "is_postgres_url",
    "open_database",
    "resolve_database_url",
]

DATABASE_URL_ENV = "SWITCHBOARD_DATABASE_URL"

T = TypeVar("T")

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class Cursor(Protocol):
    """The result of :meth:`Connection.execute` (sqlite3 and psycopg cursors both are one)."""

    @property
    def rowcount(self) -> int:
        """Rows the statement changed."""
        ...

    def fetchone(self) -> Any:
        """The next row, or None."""
        ...

    def fetchall(self) -> list[Any]:
        """The remaining rows."""
        ...


class Connection(Protocol):
    """A database connection: ``execute`` with ``?`` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Cursor:
        """Run one statement."""
        ...


class Transaction:
    """A write transaction in progress: its connection, revision and commit time.

    The revision is taken on first use (``take_revision``), so a transaction
    that ends up changing nothing (a replayed idempotent request) uses none.
    """

    def __init__(self, conn: Connection, take_revision: Callable[[], int]) -> None:
        self.conn = conn
        self.now_ns = time.time_ns()
        self._take_revision = take_revision
        self._revision: int | None = None
        self._appended_revision: int | None = None
        self.appended = False
        self.logged_bytes = 0  # payload bytes appended (bounds a group commit's batch)

    @property
    def revision(self) -> int:
        """The revision this transaction's event gets (and its rows record)."""
        if self._revision is None:
            self._revision = self._take_revision()
        return self._revision

    def append_event(self, resource_id: str, kind: str, payload: bytes) -> int:
        """Append this transaction's event to the log; returns its revision."""
        append_event(self.conn, self.revision, resource_id, kind, self.now_ns, payload)
        self.appended = True
        self.logged_bytes += len(payload)
        self._appended_revision = self.revision
        return self.revision

    @property
    def last_appended(self) -> int | None:
        """The revision of the last event appended (None: none yet)."""
        return self._appended_revision

    def next_event(self) -> None:
        """Let the next change of this transaction get its own, next revision.

        For a transaction that commits several events at once (the effects
        of a consumed event, :mod:`services.runtime.events`). Before the
        current revision's event is appended this does nothing, so revisions
        stay gap-free. Example: ``tx.next_event(); TABLE.commit(tx, ...)``.
        """
        if self._revision is not None and self._revision == self._appended_revision:
            self._revision = None


class Backend(Protocol):
    """A service's database, as its store uses it (see the module docstring)."""

    @property
    def changes(self) -> ChangeFeed:
        """Wakes watchers after each commit to the change log."""
        ...

    @property
    def poll_interval(self) -> float | None:
        """How often a watcher looks at the log unwoken (None: only when woken)."""
        ...

    async def start_listening(self) -> None:
        """Start noticing other processes' commits (idempotent; call from the event loop)."""
        ...

    async def read(self, fn: Callable[[Connection], T], *, big: bool = False) -> T:
        """``fn(conn)`` on committed data; ``big`` reads may move off the event loop."""
        ...

    async def write(self, fn: Callable[[Transaction], T]) -> T:
        """``fn(tx)`` in one write transaction, committed (durably) when this returns."""
        ...

    def secret(self, name: str, size: int = 32) -> bytes:
        """A random secret kept in the database, the same for every process (blocking)."""
        ...

    def close(self) -> None:
        """End watchers, finish queued work, release connections."""
        ...


def is_postgres_url(location: Path | str) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) URL, False for a data dir."""
    return isinstance(location, str) and location.startswith(_POSTGRES_SCHEMES)


def resolve_database_url(flag: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The PostgreSQL URL: the flag, else ``$SWITCHBOARD_DATABASE_URL``; None means SQLite.

    Raises ValueError for a URL that is not ``postgresql://`` (the only server backend).
    Example: ``resolve_database_url(None, {}) is None``.
    """
    env = os.environ if environ is None else environ
    url = flag or env.get(DATABASE_URL_ENV) or None
    if url is not None and not is_postgres_url(url):
        raise ValueError(f"--database-url must start with postgresql://, got {url.split(':')[0]!r}")
    return url


def open_database(
    location: Path | str, database_file: str, migrations: Sequence[Migration]
) -> Backend:
    """The database at ``location``, migrated: ``<location>/<database_file>`` (SQLite) for
    a data dir, the PostgreSQL database for a ``postgresql://`` URL.

    Example: ``open_database(Path("var"), "book.db", MIGRATIONS)``.
    """
    if is_postgres_url(location):
        from services.runtime.storage._postgres import PostgresDatabase  # needs psycopg

        schema = "switchboard_" + database_file.removesuffix(".db")
        return PostgresDatabase.open(str(location), migrations, schema=schema)
    from services.runtime.storage._db import Database

    return Database.open(Path(location) / database_file, migrations)
