"""UserServiceSellers: what each answer of the user service means for the seller check."""

from __future__ import annotations

import pytest

from services.product import UserServiceSellers
from services.runtime import errors as e
from switchboard.user.v1 import user_pb2


class _Users:
    """Stands in for the client runtime's UserClient: one answer for every GetUser."""

    def __init__(self, answer: e.SwitchboardError | None) -> None:
        self.answer = answer
        self.asked: list[str] = []

    async def get_user(self, user_id: str, *, timeout_s: float | None = None) -> user_pb2.User:
        self.asked.append(user_id)
        if self.answer is not None:
            raise self.answer
        return user_pb2.User(id=user_id)


async def test_an_existing_user_is_a_seller() -> None:
    users = _Users(None)
    assert await UserServiceSellers(users).exists("u1") is True
    assert users.asked == ["u1"]


async def test_not_found_means_no_such_seller() -> None:
    assert await UserServiceSellers(_Users(e.NotFound("no"))).exists("u1") is False


@pytest.mark.parametrize("answer", [e.Unavailable("down"), e.DeadlineExceeded("slow")])
async def test_unreachable_or_late_passes_through(answer: e.SwitchboardError) -> None:
    with pytest.raises(type(answer)):
        await UserServiceSellers(_Users(answer)).exists("u1")


@pytest.mark.parametrize("answer", [e.Internal("boom"), e.PermissionDenied("no")])
async def test_any_other_answer_is_unavailable(answer: e.SwitchboardError) -> None:
    with pytest.raises(e.Unavailable) as caught:
        await UserServiceSellers(_Users(answer)).exists("u1")
    assert caught.value.reason == "SELLER_CHECK_FAILED"
