"""The user store: the ``users`` table on the shared resource-store skeleton.

Everything standard (write-once create, get, keyset list, FieldMask+etag
update, delete, watch, idempotent retries, one transaction per change with
its event) is :class:`services.runtime.storage.ResourceStore`, on SQLite or
PostgreSQL alike. What is the user's own: its columns and the
case-insensitive unique email (``email_key``; the table's UNIQUE index
backs the check up).

Example::

    store = UserStore.open(Path("var"))               # or "postgresql://..."
    user = await store.get("0190ab...")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.runtime.storage import ResourceStore, ResourceTable, Unique
from services.user._schema import DATABASE_FILE, MIGRATIONS
from services.user._validate import email_key
from switchboard.user.v1 import user_pb2

__all__ = ["USERS", "USER_TYPE", "SqliteUserStore", "UserStore"]


def _columns(user: user_pb2.User) -> tuple[str, str, str]:
    return (user.email, email_key(user.email), user.display_name)


def _set_columns(user: user_pb2.User, values: Sequence[Any]) -> None:
    user.email, _, user.display_name = values


USERS = ResourceTable(
    message=user_pb2.User,
    event=user_pb2.UserEvent,
    table="users",
    columns=("email", "email_key", "display_name"),
    to_columns=_columns,
    from_columns=_set_columns,
    unique=(Unique("email", "email_key", "EMAIL_ALREADY_EXISTS", key=email_key),),
)
USER_TYPE = USERS.type_name


class UserStore(ResourceStore[user_pb2.User]):
    """Durable users and their change log (``<data dir>/user.db`` or PostgreSQL)."""

    DATABASE_FILE = DATABASE_FILE
    MIGRATIONS = MIGRATIONS
    TABLE = USERS


SqliteUserStore = UserStore
"""The store's former name (it serves PostgreSQL too now), kept for callers outside this package."""
