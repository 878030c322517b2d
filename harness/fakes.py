"""Tiny fake servicers (in-process, on the generated base classes) for the client tests
and the bench's client-overhead measurement.

``FakeUsers`` answers GetUser with its own name as the user id (so a test can
see which instance served a call), counts every call per method, and can be
told to fail or stall: ``script`` maps a method name to a list of actions
consumed one per call (an exception to raise, or a number of seconds to sleep).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from services.runtime import Service, current_request_id, errors
from switchboard.product.v1 import product_pb2, product_service_pb2, product_service_pb2_grpc
from switchboard.user.v1 import user_pb2, user_service_pb2, user_service_pb2_grpc

_U = user_service_pb2
_P = product_service_pb2

__all__ = [
    "Action",
    "FakeProducts",
    "FakeUsers",
    "elapsed_since",
    "products_service",
    "users_service",
]

Action = BaseException | float


class FakeUsers(user_service_pb2_grpc.UserServiceServicer):
    """An in-memory user service that records what it was asked."""

    def __init__(self, name: str = "users") -> None:
        self.name = name
        self.calls: Counter[str] = Counter()
        self.script: dict[str, list[Action]] = {}
        self.default_sleep = 0.0
        self.users: dict[str, user_pb2.User] = {}
        self.by_request_id: dict[str, user_pb2.User] = {}
        self.seen_remaining: list[float | None] = []
        self.seen_request_ids: list[str | None] = []
        self.lose_replies = 0  # CreateUser: commit, then answer UNAVAILABLE this many times

    async def _act(self, method: str, context: Any) -> None:
        self.calls[method] += 1
        self.seen_remaining.append(context.time_remaining())
        self.seen_request_ids.append(current_request_id())
        actions = self.script.get(method)
        action: Action = actions.pop(0) if actions else self.default_sleep
        if isinstance(action, BaseException):
            raise action
        if action:
            await asyncio.sleep(action)

    async def GetUser(self, request: _U.GetUserRequest, context: Any) -> _U.GetUserResponse:  # noqa: N802
        await self._act("GetUser", context)
        return _U.GetUserResponse(user=user_pb2.User(id=self.name, display_name=request.id))

    async def CreateUser(  # noqa: N802
        self, request: _U.CreateUserRequest, context: Any
    ) -> _U.CreateUserResponse:
        await self._act("CreateUser", context)
        key = request.request_id
        user = self.by_request_id.get(key) if key else None
        if user is None:
            user = user_pb2.User(
                id=f"u{len(self.users) + 1}",
                email=request.user.email,
                display_name=request.user.display_name,
            )
            self.users[user.id] = user
            if key:
                self.by_request_id[key] = user
            if self.lose_replies:
                self.lose_replies -= 1
                raise errors.Unavailable("reply lost on the way back")
        return _U.CreateUserResponse(user=user)

    async def ListUsers(  # noqa: N802
        self, request: _U.ListUsersRequest, context: Any
    ) -> _U.ListUsersResponse:
        await self._act("ListUsers", context)
        return _U.ListUsersResponse(users=list(self.users.values()))

    async def UpdateUser(  # noqa: N802
        self, request: _U.UpdateUserRequest, context: Any
    ) -> _U.UpdateUserResponse:
        await self._act("UpdateUser", context)
        user = self.users.get(request.user.id)
        if user is None:
            raise errors.NotFound.for_resource("User", request.user.id)
        for path in request.update_mask.paths:
            setattr(user, path, getattr(request.user, path))
        return _U.UpdateUserResponse(user=user)

    async def DeleteUser(  # noqa: N802
        self, request: _U.DeleteUserRequest, context: Any
    ) -> _U.DeleteUserResponse:
        await self._act("DeleteUser", context)
        if self.users.pop(request.id, None) is None:
            raise errors.NotFound.for_resource("User", request.id)
        return _U.DeleteUserResponse(revision=len(self.users) + 100)

    async def WatchUsers(  # noqa: N802
        self, request: _U.WatchUsersRequest, context: Any
    ) -> AsyncIterator[_U.WatchUsersResponse]:
        await self._act("WatchUsers", context)
        for revision in range(request.start_revision + 1, request.start_revision + 4):
            event = user_pb2.UserEvent(revision=revision, type=user_pb2.USER_EVENT_TYPE_CREATED)
            yield _U.WatchUsersResponse(event=event)


def users_service(servicer: FakeUsers) -> Service:
    """The runtime binding of a FakeUsers."""
    return Service(
        servicer,
        user_service_pb2_grpc.add_UserServiceServicer_to_server,
        "switchboard.user.v1.UserService",
    )


class FakeProducts(product_service_pb2_grpc.ProductServiceServicer):
    """A product service whose GetProduct asks the user service for the seller (a second hop)."""

    def __init__(self, users: Any) -> None:
        self.users = users  # a UserClient
        self.seen_remaining: list[float | None] = []
        self.reservations: dict[str, str] = {}

    async def GetProduct(  # noqa: N802
        self, request: _P.GetProductRequest, context: Any
    ) -> _P.GetProductResponse:
        self.seen_remaining.append(context.time_remaining())
        seller = await self.users.get_user("seller-of-" + request.id)
        product = product_pb2.Product(id=request.id, seller_id=seller.id)
        return _P.GetProductResponse(product=product)

    async def ReserveStock(  # noqa: N802
        self, request: _P.ReserveStockRequest, context: Any
    ) -> _P.ReserveStockResponse:
        if not request.request_id:
            raise errors.InvalidArgument("request_id is required", violations=[("request_id", "")])
        reservation_id = self.reservations.setdefault(
            request.request_id, f"r{len(self.reservations) + 1}"
        )
        reservation = product_pb2.Reservation(
            id=reservation_id, product_id=request.product_id, quantity=request.quantity
        )
        return _P.ReserveStockResponse(reservation=reservation)

    # The rest of the contract: not needed by the tests.
    async def CreateProduct(self, request: Any, context: Any) -> Any:  # noqa: N802
        raise errors.Unimplemented()

    async def ListProducts(self, request: Any, context: Any) -> Any:  # noqa: N802
        raise errors.Unimplemented()

    async def UpdateProduct(self, request: Any, context: Any) -> Any:  # noqa: N802
        raise errors.Unimplemented()

    async def DeleteProduct(self, request: Any, context: Any) -> Any:  # noqa: N802
        raise errors.Unimplemented()

    async def ReleaseStock(self, request: Any, context: Any) -> Any:  # noqa: N802
        raise errors.Unimplemented()

    async def WatchProducts(  # noqa: N802
        self, request: Any, context: Any
    ) -> AsyncIterator[_P.WatchProductsResponse]:
        raise errors.Unimplemented()
        yield  # an async generator, like the contract's server stream


def products_service(servicer: FakeProducts) -> Service:
    """The runtime binding of a FakeProducts."""
    return Service(
        servicer,
        product_service_pb2_grpc.add_ProductServiceServicer_to_server,
        "switchboard.product.v1.ProductService",
    )


def elapsed_since(start: float) -> float:
    """Seconds since ``start`` on the monotonic clock."""
    return time.monotonic() - start
