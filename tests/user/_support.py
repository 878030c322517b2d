"""Helpers the user tests share (the conftest's fixtures build on them)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from switchboard.user.v1 import user_pb2, user_service_pb2

__all__ = ["WAIT", "create", "new_user", "read_event"]


if TYPE_CHECKING:
    from switchboard.user.v1.user_service_pb2_grpc import UserServiceAsyncStub


WAIT = 5.0
"""Bound on every single call or wait in these tests (seconds)."""


async def read_event(watch: Any) -> user_service_pb2.WatchUsersResponse:
    """The next message of a WatchUsers stream (bounded wait)."""
    response = await asyncio.wait_for(watch.read(), WAIT)
    assert isinstance(response, user_service_pb2.WatchUsersResponse), response
    return response


def new_user(email: str = "ada@example.com", name: str = "Ada Lovelace") -> user_pb2.User:
    return user_pb2.User(email=email, display_name=name)


async def create(
    stub: UserServiceAsyncStub, email: str = "ada@example.com", request_id: str = ""
) -> user_pb2.User:
    request = user_service_pb2.CreateUserRequest(user=new_user(email), request_id=request_id)
    return (await stub.CreateUser(request, timeout=WAIT)).user
