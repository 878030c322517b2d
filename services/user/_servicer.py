"""The UserService servicer: validate, call the store, raise typed errors. Nothing else.

Example::

    servicer = UserServicer(store, PageTokens(secret))
    Service(servicer, add_UserServiceServicer_to_server, SERVICE_NAME)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeAlias

from services.runtime.paging import PageTokens, page_size
from services.runtime.storage import (
    RequestKey,
    Violations,
    check_chosen_id,
    check_id,
    check_request_id,
    check_update_mask,
    require_id,
    watch_stream,
)
from services.user._store import UserStore
from services.user._validate import (
    READ_ONLY_PATHS,
    UPDATABLE_PATHS,
    check_display_name,
    check_email,
)
from switchboard.user.v1 import user_service_pb2 as pb
from switchboard.user.v1 import user_service_pb2_grpc

if TYPE_CHECKING:
    import grpc.aio

    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

__all__ = ["SERVICE_NAME", "UserServicer"]

SERVICE_NAME = "switchboard.user.v1.UserService"
_PAGE_QUERY = "users"


class UserServicer(user_service_pb2_grpc.UserServiceServicer):
    """Serves ``switchboard.user.v1.UserService`` from a :class:`UserStore`."""

    def __init__(self, store: UserStore, tokens: PageTokens) -> None:
        self._store = store
        self._tokens = tokens

    async def CreateUser(
        self, request: pb.CreateUserRequest, context: Context
    ) -> pb.CreateUserResponse:
        violations = Violations()
        check_email(violations, "user.email", request.user.email)
        check_display_name(violations, "user.display_name", request.user.display_name)
        check_request_id(violations, "request_id", request.request_id, required=False)
        check_chosen_id(violations, "user_id", request.user_id)
        violations.raise_if_any("invalid CreateUser request")
        key = RequestKey.of("CreateUser", request.request_id, request)
        return await self._store.create_user(request.user, key, request.user_id)

    async def GetUser(self, request: pb.GetUserRequest, context: Context) -> pb.GetUserResponse:
        require_id("id", request.id, "GetUser")
        return pb.GetUserResponse(user=await self._store.get_user(request.id))

    async def ListUsers(
        self, request: pb.ListUsersRequest, context: Context
    ) -> pb.ListUsersResponse:
        size = page_size(request.page_size)
        after = self._tokens.verify(request.page_token, _PAGE_QUERY)
        page = await self._store.list_users(after, size)
        token = self._tokens.issue(page.users[-1].id, _PAGE_QUERY) if page.more else ""
        return pb.ListUsersResponse(users=page.users, next_page_token=token)

    async def UpdateUser(
        self, request: pb.UpdateUserRequest, context: Context
    ) -> pb.UpdateUserResponse:
        violations = Violations()
        check_id(violations, "user.id", request.user.id)
        paths = check_update_mask(violations, request.update_mask, UPDATABLE_PATHS, READ_ONLY_PATHS)
        if "email" in paths:
            check_email(violations, "user.email", request.user.email)
        if "display_name" in paths:
            check_display_name(violations, "user.display_name", request.user.display_name)
        check_request_id(violations, "request_id", request.request_id, required=False)
        violations.raise_if_any("invalid UpdateUser request")
        key = RequestKey.of("UpdateUser", request.request_id, request)
        return await self._store.update_user(request.user, paths, key)

    async def DeleteUser(
        self, request: pb.DeleteUserRequest, context: Context
    ) -> pb.DeleteUserResponse:
        violations = Violations()
        check_id(violations, "id", request.id)
        check_request_id(violations, "request_id", request.request_id, required=False)
        violations.raise_if_any("invalid DeleteUser request")
        key = RequestKey.of("DeleteUser", request.request_id, request)
        return await self._store.delete_user(request.id, request.etag, key)

    async def WatchUsers(
        self, request: pb.WatchUsersRequest, context: Context
    ) -> AsyncIterator[pb.WatchUsersResponse]:
        # Ends with UNAVAILABLE when the server stops: the log itself has no end.
        async for event in watch_stream(request.start_revision, self._store.watch_users):
            yield pb.WatchUsersResponse(event=event)
