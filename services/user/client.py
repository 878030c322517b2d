"""The user service's typed client, for Python callers (tests, scripts, other programs).

Example::

    async with Client.from_env() as client:
        users = await UserClient.connect(client)
        user = await users.create_user(email="ada@example.com", display_name="Ada")
        same = await users.get_user(user.id)
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from services.runtime import MethodSpec, TypedClient, update_mask
from switchboard.user.v1 import user_pb2, user_service_pb2

__all__ = [
    "CREATE_USER",
    "DELETE_USER",
    "GET_USER",
    "LIST_USERS",
    "UPDATE_USER",
    "WATCH_USERS",
    "UserClient",
]

_U = user_service_pb2
_USER = "/switchboard.user.v1.UserService/"

CREATE_USER: MethodSpec[_U.CreateUserRequest, _U.CreateUserResponse] = MethodSpec.of(
    _USER + "CreateUser"
)
GET_USER: MethodSpec[_U.GetUserRequest, _U.GetUserResponse] = MethodSpec.of(_USER + "GetUser")
LIST_USERS: MethodSpec[_U.ListUsersRequest, _U.ListUsersResponse] = MethodSpec.of(
    _USER + "ListUsers"
)
UPDATE_USER: MethodSpec[_U.UpdateUserRequest, _U.UpdateUserResponse] = MethodSpec.of(
    _USER + "UpdateUser"
)
DELETE_USER: MethodSpec[_U.DeleteUserRequest, _U.DeleteUserResponse] = MethodSpec.of(
    _USER + "DeleteUser"
)
WATCH_USERS: MethodSpec[_U.WatchUsersRequest, _U.WatchUsersResponse] = MethodSpec.of(
    _USER + "WatchUsers"
)


class UserClient(TypedClient):
    """Typed calls to ``switchboard.user.v1.UserService`` (registry name ``user``)."""

    SERVICE = "user"

    async def create_user(
        self,
        *,
        email: str,
        display_name: str,
        user_id: str = "",
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> user_pb2.User:
        """Create a user; retried safely under one request id. ``user_id`` chooses the id
        (1-63 of ``a-z0-9-``; :class:`errors.AlreadyExists` if taken); empty lets the
        server choose. Example:
        ``await users.create_user(email="ada@example.com", display_name="Ada", user_id="ada")``."""
        user = user_pb2.User(email=email, display_name=display_name)
        request = _U.CreateUserRequest(user=user, user_id=user_id, request_id=request_id or "")
        return (await self.conn.call(CREATE_USER, request, timeout_s=timeout_s)).user

    async def get_user(self, user_id: str, *, timeout_s: float | None = None) -> user_pb2.User:
        """The user with this id; :class:`errors.NotFound` if there is none."""
        request = _U.GetUserRequest(id=user_id)
        return (await self.conn.call(GET_USER, request, timeout_s=timeout_s)).user

    async def list_users(
        self, page_size: int = 0, page_token: str = "", *, timeout_s: float | None = None
    ) -> _U.ListUsersResponse:
        """One page of users (``.users``, ``.next_page_token``)."""
        request = _U.ListUsersRequest(page_size=page_size, page_token=page_token)
        return await self.conn.call(LIST_USERS, request, timeout_s=timeout_s)

    async def update_user(
        self,
        user_id: str,
        *,
        email: str | None = None,
        display_name: str | None = None,
        etag: str = "",
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> user_pb2.User:
        """Change the fields given (not None); ``etag`` makes it conditional."""
        mask, fields = update_mask(email=email, display_name=display_name)
        user = user_pb2.User(id=user_id, etag=etag, **fields)
        request = _U.UpdateUserRequest(user=user, update_mask=mask, request_id=request_id or "")
        return (await self.conn.call(UPDATE_USER, request, timeout_s=timeout_s)).user

    async def delete_user(
        self,
        user_id: str,
        *,
        etag: str = "",
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> int:
        """Delete a user; returns the revision of the deletion."""
        request = _U.DeleteUserRequest(id=user_id, etag=etag, request_id=request_id or "")
        return (await self.conn.call(DELETE_USER, request, timeout_s=timeout_s)).revision

    async def watch_users(
        self, start_revision: int = 0, *, timeout_s: float | None = None
    ) -> AsyncIterator[user_pb2.UserEvent]:
        """The change log after ``start_revision``, then live changes. Not retried:
        after an error resume from the last ``event.revision`` you saw."""
        request = _U.WatchUsersRequest(start_revision=start_revision)
        async for message in self.conn.stream(WATCH_USERS, request, timeout_s=timeout_s):
            yield message.event
