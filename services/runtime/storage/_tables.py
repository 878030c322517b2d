"""The tables every service database has, in each backend's dialect.

A service's first migration creates them next to its own tables:
``Migration(1, "...", (*CORE_TABLES, ...), postgres=(*POSTGRES_CORE_TABLES, ...))``.

- ``events`` — the change log (:mod:`services.runtime.storage._events`).
- ``requests`` — stored responses of idempotent requests (:mod:`._idempotency`).
- ``secrets`` — random secrets every process shares (page token keys).
- ``revision_counter`` (PostgreSQL only) — the one row every write
  transaction locks first: revisions are gap-free and commit in order
  (SQLite gets both from its single write lock and ``sqlite_sequence``).
"""

from __future__ import annotations

from services.runtime.storage._db import SECRETS_TABLE
from services.runtime.storage._events import EVENTS_TABLE
from services.runtime.storage._idempotency import REQUESTS_TABLE

__all__ = ["CORE_TABLES", "POSTGRES_CORE_TABLES"]

CORE_TABLES: tuple[str, ...] = (EVENTS_TABLE, REQUESTS_TABLE, SECRETS_TABLE)
"""The change log, idempotency and secrets tables, in SQLite's dialect."""

POSTGRES_CORE_TABLES: tuple[str, ...] = (
    "CREATE TABLE events ("
    " revision BIGINT PRIMARY KEY,"
    " resource_id TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " commit_time_ns BIGINT NOT NULL,"
    " payload BYTEA NOT NULL)",
    "CREATE TABLE requests ("
    " method TEXT NOT NULL,"
    " request_id TEXT NOT NULL,"
    " fingerprint BYTEA NOT NULL,"
    " response BYTEA NOT NULL,"
    " create_time_ns BIGINT NOT NULL,"
    " PRIMARY KEY (method, request_id))",
    "CREATE TABLE secrets (name TEXT PRIMARY KEY, value BYTEA NOT NULL)",
    "CREATE TABLE revision_counter ("
    " id INTEGER PRIMARY KEY CHECK (id = 1), revision BIGINT NOT NULL)",
    "INSERT INTO revision_counter (id, revision) VALUES (1, 0)",
    # Appending an event moves the counter to its revision and notifies the watchers
    # (at commit), in the same statement: two round trips fewer per write.
    "CREATE FUNCTION events_appended() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN"
    " UPDATE revision_counter SET revision = NEW.revision WHERE id = 1;"
    " PERFORM pg_notify(TG_TABLE_SCHEMA || '_events', '');"
    " RETURN NULL;"
    " END $$",
    "CREATE TRIGGER events_appended AFTER INSERT ON events"
    " FOR EACH ROW EXECUTE FUNCTION events_appended()",
)
"""The change log, idempotency, secrets and revision counter tables, in PostgreSQL's dialect."""
