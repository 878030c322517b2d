"""Shared SQLite storage for Switchboard services: one durable file per service.

What a service store builds on:

- :class:`Database` — opens ``<data dir>/<service>.db`` (WAL, ``synchronous=FULL``,
  busy timeout, foreign keys), runs :class:`Migration` s, gives short
  ``BEGIN IMMEDIATE`` write transactions (:class:`Transaction`) on a writer
  thread, and a reader thread for big reads.
- The change log — :data:`EVENTS_TABLE`, appended by :meth:`Transaction.append_event`
  in the same transaction as the change; :func:`tail` streams it.
- Idempotency — :data:`REQUESTS_TABLE`, :class:`RequestKey`,
  :func:`find_response`, :func:`save_response`.
- :func:`new_id`, :func:`make_etag`, :func:`check_etag` and :func:`timestamp`.
- Checks shared by the standard methods: :class:`Violations`, :func:`check_id`,
  :func:`require_id`, :func:`check_chosen_id`, :func:`check_request_id`,
  :func:`check_update_mask`.
- :class:`SqliteStore` — the base of a service's store: open, idempotent
  writes (:meth:`SqliteStore.write_once` + :func:`commit_change`), keyset
  pages (:func:`keyset_page`), watches; row helpers :func:`fetch_row`,
  :func:`check_id_free`; :func:`watch_stream` for a Watch RPC and
  :func:`in_revision_order` for a replay.

A service's first migration creates :data:`CORE_TABLES` next to its own.

Example::

    MIGRATIONS = (Migration(1, "users", (*CORE_TABLES, "CREATE TABLE users (...)")),)
    db = Database.open(resolve_data_dir(args.data_dir) / "user.db", MIGRATIONS)
"""

from __future__ import annotations

from services.runtime.storage._db import (
    BUSY_TIMEOUT_MS,
    DATA_DIR_ENV,
    DEFAULT_DATA_DIR,
    SECRETS_TABLE,
    Database,
    Transaction,
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
from services.runtime.storage._fields import (
    MAX_ID_LENGTH,
    Violations,
    check_chosen_id,
    check_id,
    check_request_id,
    check_update_mask,
    require_id,
)
from services.runtime.storage._idempotency import (
    MAX_REQUEST_ID_LENGTH,
    REQUESTS_TABLE,
    RequestKey,
    find_response,
    save_response,
)
from services.runtime.storage._migrations import (
    Migration,
    MigrationError,
    migrate,
    schema_version,
)
from services.runtime.storage._store import (
    INLINE_PAGE_LIMIT,
    SqliteStore,
    check_id_free,
    commit_change,
    fetch_row,
    keyset_page,
)
from services.runtime.storage._values import check_etag, make_etag, new_id, timestamp
from services.runtime.storage._watch import POLL_INTERVAL_S, tail, watch_stream

__all__ = [
    "BUSY_TIMEOUT_MS",
    "CORE_TABLES",
    "DATA_DIR_ENV",
    "DEFAULT_DATA_DIR",
    "EVENTS_TABLE",
    "INLINE_PAGE_LIMIT",
    "MAX_ID_LENGTH",
    "MAX_REQUEST_ID_LENGTH",
    "POLL_INTERVAL_S",
    "REQUESTS_TABLE",
    "SECRETS_TABLE",
    "ChangeFeed",
    "Database",
    "LogEntry",
    "Migration",
    "MigrationError",
    "RequestKey",
    "SqliteStore",
    "Transaction",
    "Violations",
    "check_chosen_id",
    "check_etag",
    "check_id",
    "check_id_free",
    "check_request_id",
    "check_update_mask",
    "commit_change",
    "connect",
    "fetch_row",
    "find_response",
    "head_revision",
    "in_revision_order",
    "keyset_page",
    "make_etag",
    "migrate",
    "new_id",
    "read_events",
    "require_id",
    "resolve_data_dir",
    "save_response",
    "schema_version",
    "tail",
    "timestamp",
    "transaction",
    "watch_stream",
]

CORE_TABLES: tuple[str, ...] = (EVENTS_TABLE, REQUESTS_TABLE, SECRETS_TABLE)
"""The change log, idempotency and secrets tables every service database has."""
