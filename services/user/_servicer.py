"""The UserService servicer: validate, call the store, raise typed errors. Nothing else.

Example::

    servicer = UserServicer(store, PageTokens(secret))
    Service(servicer, add_UserServiceServicer_to_server, SERVICE_NAME)
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from services.runtime.paging import PageTokens
from services.runtime.storage import Context, list_page, request_key, update_paths
from services.runtime.validation import Violations, check_id, require_id
from services.user._store import UserStore
from services.user._validate import READ_ONLY_PATHS, UPDATABLE_PATHS, check_user
from switchboard.user.v1 import user_service_pb2 as pb
from switchboard.user.v1 import user_service_pb2_grpc

__all__ = ["SERVICE_NAME", "UserServicer"]

SERVICE_NAME = "switchboard.user.v1.UserService"


class UserServicer(user_service_pb2_grpc.UserServiceServicer):
    """Serves ``switchboard.user.v1.UserService`` from a :class:`UserStore`."""

    def __init__(self, store: UserStore, tokens: PageTokens) -> None:
        self._store = store
        self._tokens = tokens

    async def CreateUser(
        self, request: pb.CreateUserRequest, context: Context
    ) -> pb.CreateUserResponse:
        violations = Violations()
        check_user(violations, request.user, UPDATABLE_PATHS)
        key = request_key(violations, "CreateUser", request, chosen_id="user_id")
        return await self._store.create(request.user, request.user_id, key, pb.CreateUserResponse)

    async def GetUser(self, request: pb.GetUserRequest, context: Context) -> pb.GetUserResponse:
        require_id("id", request.id, "GetUser")
        return pb.GetUserResponse(user=await self._store.get(request.id))

    async def ListUsers(
        self, request: pb.ListUsersRequest, context: Context
    ) -> pb.ListUsersResponse:
        users, token = await list_page(self._tokens, request, ("users",), self._store.list)
        return pb.ListUsersResponse(users=users, next_page_token=token)

    async def UpdateUser(
        self, request: pb.UpdateUserRequest, context: Context
    ) -> pb.UpdateUserResponse:
        violations = Violations()
        paths = update_paths(violations, request, "user", UPDATABLE_PATHS, READ_ONLY_PATHS)
        check_user(violations, request.user, paths)
        key = request_key(violations, "UpdateUser", request)
        return await self._store.update(request.user, paths, key, pb.UpdateUserResponse)

    async def DeleteUser(
        self, request: pb.DeleteUserRequest, context: Context
    ) -> pb.DeleteUserResponse:
        violations = Violations()
        check_id(violations, "id", request.id)
        key = request_key(violations, "DeleteUser", request)
        return await self._store.delete(request.id, request.etag, key, pb.DeleteUserResponse)

    async def WatchUsers(
        self, request: pb.WatchUsersRequest, context: Context
    ) -> AsyncIterator[pb.WatchUsersResponse]:
        # Ends with UNAVAILABLE when the server stops: the log itself has no end.
        async for event in self._store.watch_stream(request.start_revision):
            yield pb.WatchUsersResponse(event=event)
