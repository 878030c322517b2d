"""Consumer checkpoints: the last revision of another service's change log applied here.

One row per subscription (:mod:`services.runtime.events`), written in the
SAME transaction as the effects of the event it names, so the two commit
together or not at all. A transaction that finds the checkpoint at or past
an event's revision applies nothing: that is what makes a redelivered event,
or one that two consumer instances both received, take effect once.

A service that consumes adds the table in a migration of its own:
``Migration(3, "checkpoints", (CHECKPOINTS_TABLE,), postgres=(POSTGRES_CHECKPOINTS_TABLE,))``.

Example::

    if read_checkpoint(tx.conn, "loans<-shelf") < event.revision:
        ...  # the effects
        save_checkpoint(tx.conn, "loans<-shelf", event.revision, tx.now_ns)
"""

from __future__ import annotations

from services.runtime.storage._backend import Connection

__all__ = [
    "CHECKPOINTS_TABLE",
    "POSTGRES_CHECKPOINTS_TABLE",
    "read_checkpoint",
    "save_checkpoint",
]

CHECKPOINTS_TABLE = (
    "CREATE TABLE checkpoints ("
    " subscription TEXT PRIMARY KEY,"
    " revision INTEGER NOT NULL CHECK (typeof(revision) = 'integer' AND revision >= 0),"
    " update_time_ns INTEGER NOT NULL) WITHOUT ROWID"
)
"""The checkpoints table, in SQLite's dialect."""

POSTGRES_CHECKPOINTS_TABLE = (
    "CREATE TABLE checkpoints ("
    ' subscription TEXT COLLATE "C" PRIMARY KEY,'
    " revision BIGINT NOT NULL CHECK (revision >= 0),"
    " update_time_ns BIGINT NOT NULL)"
)
"""The checkpoints table, in PostgreSQL's dialect."""

_SELECT = "SELECT revision FROM checkpoints WHERE subscription = ?"
_UPSERT = (
    "INSERT INTO checkpoints (subscription, revision, update_time_ns) VALUES (?, ?, ?)"
    " ON CONFLICT (subscription) DO UPDATE"
    " SET revision = excluded.revision, update_time_ns = excluded.update_time_ns"
)


def read_checkpoint(conn: Connection, subscription: str) -> int:
    """The last revision applied for ``subscription`` (0: none yet)."""
    row = conn.execute(_SELECT, (subscription,)).fetchone()
    return int(row[0]) if row is not None else 0


def save_checkpoint(conn: Connection, subscription: str, revision: int, now_ns: int) -> None:
    """Record ``revision`` as applied for ``subscription`` (inside the effects' transaction)."""
    conn.execute(_UPSERT, (subscription, revision, now_ns))
