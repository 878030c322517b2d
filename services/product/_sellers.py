"""Does a seller exist? The product service asks the user service, over gRPC.

The servicer depends only on the :class:`SellerDirectory` protocol, so unit
tests use a fake and the process uses :class:`UserServiceSellers`, which calls
``UserService.GetUser`` through the client runtime: the user service is
found through the registry, the call carries the handled call's request id,
its deadline is the handled call's remaining deadline (the runtime reads it
from the call context), and it is retried on UNAVAILABLE within that
deadline.

Outcomes::

    user exists                      -> True
    NOT_FOUND from the user service  -> False   (servicer: FAILED_PRECONDITION SELLER_NOT_FOUND)
    unreachable, retries spent       -> Unavailable       (the caller sees UNAVAILABLE)
    the deadline ran out             -> DeadlineExceeded  (the caller sees DEADLINE_EXCEEDED)
    any other answer                 -> Unavailable (the check could not be made)

Example::

    sellers = UserServiceSellers(await UserLookupClient.connect(client))
    if not await sellers.exists(product.seller_id): ...
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Protocol

from services.runtime import MethodSpec, TypedClient, errors
from switchboard.user.v1 import user_pb2, user_service_pb2

__all__ = ["SellerDirectory", "UserLookup", "UserLookupClient", "UserServiceSellers"]

_GET_USER: MethodSpec[user_service_pb2.GetUserRequest, user_service_pb2.GetUserResponse] = (
    MethodSpec.of("/switchboard.user.v1.UserService/GetUser")
)

_WATCH_USERS: MethodSpec[
    user_service_pb2.WatchUsersRequest, user_service_pb2.WatchUsersResponse
] = MethodSpec.of("/switchboard.user.v1.UserService/WatchUsers")

log = logging.getLogger("switchboard.product.sellers")


class SellerDirectory(Protocol):
    """Answers whether a user id names an existing user (a possible seller)."""

    async def exists(self, seller_id: str) -> bool:
        """True if the user exists, False if it does not.

        Raises :class:`errors.Unavailable` or :class:`errors.DeadlineExceeded`
        when it cannot tell.
        """
        ...


class UserLookup(Protocol):
    """The one call of the user service this module makes (``GetUser``)."""

    async def get_user(self, user_id: str, *, timeout_s: float | None = None) -> user_pb2.User:
        """The user, or :class:`errors.NotFound`."""
        ...


class UserLookupClient(TypedClient):
    """:class:`UserLookup` over the user service's contract: generated stubs, no user code.

    A service never imports another service's package; it calls it through the
    client runtime with the messages generated from that service's contract.
    """

    SERVICE = "user"

    async def get_user(self, user_id: str, *, timeout_s: float | None = None) -> user_pb2.User:
        """The user with this id; :class:`errors.NotFound` if there is none."""
        request = user_service_pb2.GetUserRequest(id=user_id)
        return (await self.conn.call(_GET_USER, request, timeout_s=timeout_s)).user

    async def user_log(self) -> AsyncGenerator[user_pb2.UserEvent, None]:
        """The user change log from its start, then every change (rebuilds the projection)."""
        request = user_service_pb2.WatchUsersRequest(start_revision=0)
        async for response in self.conn.stream(_WATCH_USERS, request):
            yield response.event


class UserServiceSellers:
    """:class:`SellerDirectory` backed by the user service (``GetUser``)."""

    def __init__(self, users: UserLookup) -> None:
        self._users = users

    async def exists(self, seller_id: str) -> bool:
        try:
            await self._users.get_user(seller_id)
        except errors.NotFound:
            return False
        except (errors.Unavailable, errors.DeadlineExceeded):
            raise
        except errors.SwitchboardError as err:
            log.warning("seller check for %r failed: %r", seller_id, err)
            raise errors.Unavailable(
                "cannot check the seller: the user service did not answer usefully",
                reason="SELLER_CHECK_FAILED",
            ) from None
        return True
