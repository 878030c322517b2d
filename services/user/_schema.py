"""The user database's schema, as an ordered list of migrations.

Version 1: the core tables (``events`` change log, ``requests`` idempotency,
``secrets``) and ``users``. ``email_key`` is the lower-cased email, UNIQUE:
the database itself refuses a second user with the same address, whatever
the code above it does. ``revision`` is the revision of the user's last
change (its etag is derived from it).

Version 2: index the change log by resource, for a user's history.

Each migration that SQLite and PostgreSQL spell differently (types, ``WITHOUT
ROWID``) gives its PostgreSQL form too; ids compare byte-wise there as well
(``COLLATE "C"``), so List pages keep SQLite's order.

Add a migration by appending ``Migration(3, ...)``; never edit a shipped one.
"""

from __future__ import annotations

from services.runtime.storage import CORE_TABLES, POSTGRES_CORE_TABLES, Migration

__all__ = ["DATABASE_FILE", "MIGRATIONS"]

DATABASE_FILE = "user.db"

_USERS = (
    "CREATE TABLE users ("
    " id TEXT PRIMARY KEY,"
    " email TEXT NOT NULL,"
    " email_key TEXT NOT NULL UNIQUE,"
    " display_name TEXT NOT NULL,"
    " create_time_ns INTEGER NOT NULL,"
    " update_time_ns INTEGER NOT NULL,"
    " revision INTEGER NOT NULL) WITHOUT ROWID"
)
_POSTGRES_USERS = (
    "CREATE TABLE users ("
    ' id TEXT COLLATE "C" PRIMARY KEY,'
    " email TEXT NOT NULL,"
    " email_key TEXT NOT NULL UNIQUE,"
    " display_name TEXT NOT NULL,"
    " create_time_ns BIGINT NOT NULL,"
    " update_time_ns BIGINT NOT NULL,"
    " revision BIGINT NOT NULL)"
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "users, change log, idempotency, secrets",
        (*CORE_TABLES, _USERS),
        postgres=(*POSTGRES_CORE_TABLES, _POSTGRES_USERS),
    ),
    Migration(
        2,
        "index the change log by resource",
        ("CREATE INDEX events_by_resource ON events (resource_id, revision)",),
    ),
)
