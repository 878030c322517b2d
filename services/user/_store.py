"""What the user servicer needs from storage: a small async interface.

The servicer validates requests and calls these methods; it never sees SQL.
:class:`services.user.SqliteUserStore` is the embedded implementation; a
PostgreSQL one (several machines sharing one database) would implement the
same methods, taking the same row locks in one transaction per mutation.

Contract for every implementation:

- Each mutation writes the change, its :class:`UserEvent` (with the next
  revision) and, when ``key`` is given, the response for that key in ONE
  transaction; a key seen before returns the stored response and changes
  nothing (see :mod:`services.runtime.storage` for the reuse rule).
- Errors are :mod:`services.runtime.errors` types: NotFound, AlreadyExists
  (email or chosen id taken), Aborted (stale etag), InvalidArgument (request_id reused).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NamedTuple, Protocol

from services.runtime.storage import RequestKey
from switchboard.user.v1 import user_pb2, user_service_pb2

__all__ = ["UserPage", "UserStore"]


class UserPage(NamedTuple):
    """One page of users in id order, and whether more follow."""

    users: list[user_pb2.User]
    more: bool


class UserStore(Protocol):
    """Durable users plus their change log.

    Example::

        response = await store.create_user(user, RequestKey.of("CreateUser", "r1", request))
        page = await store.list_users(after_id=None, limit=50)
    """

    async def create_user(
        self, user: user_pb2.User, key: RequestKey | None, user_id: str = ""
    ) -> user_service_pb2.CreateUserResponse:
        """Create a user from the (validated) email and display_name of ``user``,
        with id ``user_id`` (AlreadyExists if taken) or a fresh one when empty."""
        ...

    async def get_user(self, user_id: str) -> user_pb2.User:
        """The user with this id (NotFound if none)."""
        ...

    async def list_users(self, after_id: str | None, limit: int) -> UserPage:
        """Up to ``limit`` users with an id above ``after_id``, in id order."""
        ...

    async def update_user(
        self, user: user_pb2.User, paths: frozenset[str], key: RequestKey | None
    ) -> user_service_pb2.UpdateUserResponse:
        """Copy the ``paths`` fields of ``user`` onto the stored user (etag checked if set)."""
        ...

    async def delete_user(
        self, user_id: str, etag: str, key: RequestKey | None
    ) -> user_service_pb2.DeleteUserResponse:
        """Delete the user (etag checked if non-empty)."""
        ...

    def watch_users(self, start_revision: int) -> AsyncIterator[user_pb2.UserEvent]:
        """The events after ``start_revision``, then each new one; ends when the store closes."""
        ...

    def end_watches(self) -> None:
        """End every open watch stream (server shutdown: streams must not hold up the drain)."""
        ...

    def close(self) -> None:
        """Release the storage; open watches end."""
        ...
