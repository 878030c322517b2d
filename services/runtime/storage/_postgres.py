"""The PostgreSQL backend: one database shared by every instance of a service.

Driver: psycopg 3 with psycopg_pool (measured against asyncpg, see the
README's "Running on several machines"). A store's transaction functions
are synchronous (they are shared with SQLite), so they run on a small
thread pool, each thread with a pooled connection; ``?`` placeholders are
rewritten to ``%s`` once per statement.

Each service keeps its tables in its own schema (``switchboard_user``,
``switchboard_product``): one database (one URL) can hold every service,
as one data dir holds every SQLite file.

Semantics, and how they are kept:

- **One transaction per change, gap-free revisions that commit in
  revision order.** Every write transaction first locks the one row of
  ``revision_counter`` (``SELECT ... FOR UPDATE``); appending its event
  bumps it (a trigger on ``events``). Writers of all instances therefore run
  one at a time (like SQLite's write lock): checks made inside a transaction still hold at
  commit, and a watcher that read revision N+1 can never later see N
  appear. A plain sequence would not give this (two transactions could
  commit out of order).
- **Watch wakes on LISTEN/NOTIFY.** Appending to the log fires a trigger
  that moves the counter and sends ``NOTIFY <schema>_events`` (delivered at
  commit); each instance keeps
  one listening connection that wakes its watchers. No polling: after the
  listener reconnects (the server restarted) it wakes every watcher once,
  since notifications of the outage are lost; watchers then read the log.
- **Migrations once under concurrency.** Applied in one transaction under
  ``pg_advisory_xact_lock``: instances starting together take turns; the
  second sees the version already there.
- **Faults.** A lost connection or an unreachable server is UNAVAILABLE
  (retryable); the pool drops broken connections and opens new ones.

Example::

    db = PostgresDatabase.open("postgresql://sb@127.0.0.1:5432/sb", MIGRATIONS)
    user = await db.read(lambda conn: conn.execute("SELECT ...", (uid,)).fetchone())
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import secrets
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
import psycopg_pool

from services.runtime.errors import Unavailable
from services.runtime.storage._backend import Connection, Cursor, Transaction
from services.runtime.storage._events import ChangeFeed
from services.runtime.storage._migrations import Migration, MigrationError, check_order

__all__ = ["POOL_SIZE", "PostgresDatabase", "migrate_postgres"]

T = TypeVar("T")

log = logging.getLogger("switchboard.storage.postgres")

POOL_SIZE = 8
"""Connections (and threads) per process: enough to overlap round trips on 2 cores."""

_CONNECT_TIMEOUT_S = 10.0
_CHECKOUT_TIMEOUT_S = 2.0
"""How long a call waits for a pooled connection: while the server is down, the pool
cannot replace broken ones, and the call should fail UNAVAILABLE before its deadline."""
_RECONNECT_DELAY_S = 0.5
_MIGRATION_LOCK = 0x5B_0001  # any constant: the advisory lock all instances agree on

_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
)
_UNREACHABLE = (psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout)

_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,50}")
_statements: dict[str, str] = {}


def _dialect(sql: str) -> str:
    """``sql`` with ``?`` placeholders as psycopg's ``%s`` (cached: statements are constants)."""
    translated = _statements.get(sql)
    if translated is None:
        translated = _statements[sql] = sql.replace("?", "%s")
    return translated


class _Conn:
    """A psycopg connection that speaks the :class:`Connection` protocol (``?`` placeholders)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Cursor:
        return self._conn.execute(_dialect(sql), tuple(params) or None)


class PostgresDatabase:
    """A service's PostgreSQL database: a connection pool, its threads, a listener.

    The PostgreSQL :class:`services.runtime.storage.Backend`.
    """

    def __init__(self, url: str, pool: psycopg_pool.ConnectionPool[Any], schema: str) -> None:
        self.url = url
        self.schema = schema
        self._channel = f"{schema}_events"
        self.changes = ChangeFeed()
        self._pool = pool
        self._executor = ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="pg")
        self._listener: asyncio.Task[None] | None = None
        self.poll_interval: float | None = None  # woken by LISTEN/NOTIFY only

    @classmethod
    def open(cls, url: str, migrations: Sequence[Migration], *, schema: str) -> PostgresDatabase:
        """Connect (ConnectionError if the server cannot be reached), migrate ``schema``
        (created if missing), and open.

        Example: ``PostgresDatabase.open("postgresql://127.0.0.1/sb", MIGRATIONS, schema="s")``.
        """
        if not _SCHEMA.fullmatch(schema):
            raise ValueError(f"schema name {schema!r}: use lower-case letters, digits and _")
        pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=POOL_SIZE,
            kwargs={"autocommit": True, "options": f"-c search_path={schema}"},
            open=False,
            name="switchboard",
        )
        try:
            pool.open(wait=True, timeout=_CONNECT_TIMEOUT_S)
            with pool.connection() as conn:
                migrate_postgres(conn, migrations, schema)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as err:
            pool.close()
            raise ConnectionError(f"cannot use {_redacted(url)}: {_first_line(err)}") from None
        except BaseException:
            pool.close()
            raise
        return cls(url, pool, schema)

    async def read(self, fn: Callable[[Connection], T], *, big: bool = False) -> T:
        """``fn(conn)`` on a pooled connection (autocommit: each statement sees the latest
        commits). UNAVAILABLE if the database cannot be reached."""

        def run() -> T:
            with self._connection() as conn:
                return fn(_Conn(conn))

        return await self._run(run)

    async def write(self, fn: Callable[[Transaction], T]) -> T:
        """``fn(tx)`` in one transaction that holds the revision counter's row lock;
        committed when this returns. Watchers everywhere are notified at commit."""

        def run() -> T:
            with self._connection() as conn, conn.transaction():
                return _write(_Conn(conn), fn)

        return await self._run(run)

    async def start_listening(self) -> None:
        """Start (once) the LISTEN connection that wakes this process's watchers."""
        if self._listener is None and not self.changes.closed:
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    def secret(self, name: str, size: int = 32) -> bytes:
        """A random secret kept in the database: the same for every instance (blocking)."""
        with self._connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO secrets (name, value) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
                (name, secrets.token_bytes(size)),
            )
            row = conn.execute("SELECT value FROM secrets WHERE name = %s", (name,)).fetchone()
        assert row is not None
        return bytes(row[0])

    def close(self) -> None:
        """End watchers and the listener, finish queued work, close the pool."""
        self.changes.close()
        if self._listener is not None:
            self._listener.cancel()
        self._executor.shutdown(wait=True)
        self._pool.close()

    async def _run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except _UNREACHABLE as err:
            log.warning("database unavailable: %s", _first_line(err))
            raise Unavailable("the database is unavailable; retry", retry_delay=0.2) from None

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        with self._pool.connection(timeout=_CHECKOUT_TIMEOUT_S) as conn:
            yield conn

    async def _listen(self) -> None:
        """LISTEN forever (until close), reconnecting; each notification wakes the watchers."""
        while not self.changes.closed:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=int(_CONNECT_TIMEOUT_S)
                ) as conn:
                    await conn.execute(f"LISTEN {self._channel}")
                    self.changes.notify()  # (re)connected: what was missed is in the log
                    async for _ in conn.notifies():
                        self.changes.notify()
            except psycopg.Error as err:
                log.warning("change listener lost the database: %s", _first_line(err))
            self.changes.notify()
            await asyncio.sleep(_RECONNECT_DELAY_S)


def _write(conn: _Conn, fn: Callable[[Transaction], T]) -> T:
    """Lock the revision counter, then run ``fn``; the ``events`` trigger bumps the
    counter and notifies when ``fn`` appends (see ``POSTGRES_CORE_TABLES``)."""
    row = conn.execute("SELECT revision FROM revision_counter WHERE id = 1 FOR UPDATE").fetchone()
    # Each event of the transaction takes the next one (Transaction.next_event).
    revisions = itertools.count(int(row[0]) + 1)
    return fn(Transaction(conn, lambda: next(revisions)))


def migrate_postgres(
    conn: psycopg.Connection[Any], migrations: Sequence[Migration], schema: str
) -> int:
    """Bring ``schema`` (the connection's search_path; created if missing) to the last
    migration's version, once, whoever runs concurrently.

    Runs each migration's :attr:`Migration.postgres` statements (or its
    portable :attr:`Migration.statements`) in one transaction under an
    advisory lock. Raises :class:`MigrationError` for a database newer than
    this code.
    """
    check_order(migrations)
    target = migrations[-1].version if migrations else 0
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        conn.execute(_VERSION_TABLE)
        row = conn.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
        current = int(row[0]) if row is not None else 0
        if current > target:
            raise MigrationError(f"database schema v{current} is newer than this code (v{target})")
        for migration in migrations:
            if migration.version > current:
                _apply(conn, migration)
    return target


def _apply(conn: psycopg.Connection[Any], migration: Migration) -> None:
    for statement in migration.postgres or migration.statements:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO schema_version (id, version) VALUES (1, %s)"
        " ON CONFLICT (id) DO UPDATE SET version = excluded.version",
        (migration.version,),
    )


def _redacted(url: str) -> str:
    """``url`` without its password (it goes into error messages)."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    host, port, dbname = info.get("host", ""), info.get("port", ""), info.get("dbname", "")
    return f"postgresql://{host}{':' if port else ''}{port}/{dbname}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
