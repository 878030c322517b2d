"""Shared storage for Switchboard services: one skeleton, two backends (SQLite, PostgreSQL).

What a service store builds on:

- :class:`ResourceStore` and :class:`ResourceTable` — the standard methods
  (write-once create, get, keyset list, FieldMask+etag update, delete,
  watch) of one resource, written once; a service declares its table and
  keeps only its own rules. Servicer helpers: :func:`request_key`,
  :func:`update_paths`, :func:`list_page`.
- :class:`Backend` — what a store needs from a database; :func:`open_database`
  picks SQLite (a data dir) or PostgreSQL (a ``postgresql://`` URL).

- :class:`Database` — opens ``<data dir>/<service>.db`` (WAL, ``synchronous=FULL``,
  busy timeout, foreign keys), runs :class:`Migration` s, gives short
  ``BEGIN IMMEDIATE`` write transactions (:class:`Transaction`) on a writer
  thread, and a reader thread for big reads.
- The change log — :data:`EVENTS_TABLE`, appended by :meth:`Transaction.append_event`
  in the same transaction as the change; :func:`tail` streams it.
- Idempotency — :data:`REQUESTS_TABLE`, :class:`RequestKey`,
  :func:`find_response`, :func:`save_response`.
- Consumer checkpoints — :data:`CHECKPOINTS_TABLE` (a consuming service adds
  it in a migration), :func:`read_checkpoint`, :func:`save_checkpoint`: see
  :mod:`services.runtime.events`.
- :func:`new_id`, :func:`make_etag`, :func:`check_etag` and :func:`timestamp`.
- :class:`Store` — the base below :class:`ResourceStore`: open, idempotent
  writes (:meth:`Store.write_once` + :func:`commit_change`), keyset
  pages (:func:`keyset_page`), watches; row helpers :func:`fetch_row`,
  :func:`check_id_free`; :func:`watch_stream` for a Watch RPC and
  :func:`in_revision_order` for a replay.

A service's first migration creates :data:`CORE_TABLES` (and, for
PostgreSQL, :data:`POSTGRES_CORE_TABLES`) next to its own.

Example::

    MIGRATIONS = (Migration(1, "users", (*CORE_TABLES, "CREATE TABLE users (...)")),)
    db = Database.open(resolve_data_dir(args.data_dir) / "book.db", MIGRATIONS)
"""

from __future__ import annotations

from services.runtime.storage._backend import (
    DATABASE_URL_ENV,
    Backend,
    Connection,
    Cursor,
    Transaction,
    is_postgres_url,
    open_database,
    resolve_database_url,
)
from services.runtime.storage._checkpoints import (
    CHECKPOINTS_TABLE,
    POSTGRES_CHECKPOINTS_TABLE,
    read_checkpoint,
    save_checkpoint,
)
from services.runtime.storage._db import (
    BUSY_TIMEOUT_MS,
    DATA_DIR_ENV,
    DEFAULT_DATA_DIR,
    SECRETS_TABLE,
    Database,
    connect,
    resolve_data_dir,
    transaction,
)
from services.runtime.storage._events import (
    EVENTS_TABLE,
    ChangeFeed,
    LogEntry,
    head_revision,
    in_revision_order,
    read_events,
)
from services.runtime.storage._idempotency import (
    REQUESTS_TABLE,
    RequestKey,
    find_response,
    save_response,
)
from services.runtime.storage._methods import (
    Context,
    list_page,
    request_key,
    update_paths,
)
from services.runtime.storage._migrations import (
    Migration,
    MigrationError,
    migrate,
    schema_version,
)
from services.runtime.storage._resource import (
    Page,
    ResourceStore,
    ResourceTable,
    Unique,
    merge_paths,
)
from services.runtime.storage._store import (
    INLINE_PAGE_LIMIT,
    Store,
    check_id_free,
    commit_change,
    fetch_row,
    keyset_page,
)
from services.runtime.storage._tables import CORE_TABLES, POSTGRES_CORE_TABLES
from services.runtime.storage._values import check_etag, make_etag, new_id, timestamp
from services.runtime.storage._watch import POLL_INTERVAL_S, tail, watch_stream

__all__ = [
    "BUSY_TIMEOUT_MS",
    "CHECKPOINTS_TABLE",
    "CORE_TABLES",
    "DATABASE_URL_ENV",
    "DATA_DIR_ENV",
    "DEFAULT_DATA_DIR",
    "EVENTS_TABLE",
    "INLINE_PAGE_LIMIT",
    "POLL_INTERVAL_S",
    "POSTGRES_CHECKPOINTS_TABLE",
    "POSTGRES_CORE_TABLES",
    "REQUESTS_TABLE",
    "SECRETS_TABLE",
    "Backend",
    "ChangeFeed",
    "Context",
    "Connection",
    "Cursor",
    "Database",
    "LogEntry",
    "Migration",
    "MigrationError",
    "Page",
    "RequestKey",
    "ResourceStore",
    "ResourceTable",
    "Store",
    "Transaction",
    "Unique",
    "check_etag",
    "check_id_free",
    "commit_change",
    "connect",
    "fetch_row",
    "find_response",
    "head_revision",
    "in_revision_order",
    "is_postgres_url",
    "keyset_page",
    "list_page",
    "make_etag",
    "merge_paths",
    "migrate",
    "new_id",
    "open_database",
    "read_checkpoint",
    "read_events",
    "request_key",
    "resolve_data_dir",
    "resolve_database_url",
    "save_checkpoint",
    "save_response",
    "schema_version",
    "tail",
    "timestamp",
    "transaction",
    "update_paths",
    "watch_stream",
]
