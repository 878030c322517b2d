"""Page-size and page-token abuse on ListUsers and ListProducts, as the contracts say.

Contract (user_service.proto, product_service.proto): page_size 0 means 50,
more than 1000 is treated as 1000, negative is INVALID_ARGUMENT; a page token
that is malformed, forged or from another query is INVALID_ARGUMENT. Tokens
do not expire (keyset paging): a stale token - whose last item was deleted
since - still continues right after it, with nothing skipped or repeated.
Every refused call changes nothing.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from services.runtime import InvalidArgument, from_rpc_error
from switchboard.product.v1 import product_pb2
from switchboard.product.v1 import product_service_pb2 as ps
from switchboard.user.v1 import user_pb2
from switchboard.user.v1 import user_service_pb2 as us
from tests.reliability._support.world import World

USERS = 61  # the two seeded users and 59 more: more than one default page of 50
LIST_USERS = "/switchboard.user.v1.UserService/ListUsers"
LIST_PRODUCTS = "/switchboard.product.v1.ProductService/ListProducts"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with await World.open(tmp_path) as opened:
        users = opened.channels["user"].unary_unary(
            "/switchboard.user.v1.UserService/CreateUser",
            request_serializer=us.CreateUserRequest.SerializeToString,
            response_deserializer=us.CreateUserResponse.FromString,
        )
        for i in range(USERS - 2):
            user = user_pb2.User(email=f"u{i}@example.com", display_name=f"User {i}")
            await users(us.CreateUserRequest(user=user), timeout=5)
        yield opened


async def list_users(world: World, page_size: int = 0, page_token: str = "") -> Any:
    call = world.channels["user"].unary_unary(
        LIST_USERS,
        request_serializer=us.ListUsersRequest.SerializeToString,
        response_deserializer=us.ListUsersResponse.FromString,
    )
    return await call(us.ListUsersRequest(page_size=page_size, page_token=page_token), timeout=5)


async def list_products(world: World, page_token: str = "", seller_id: str = "") -> Any:
    call = world.channels["product"].unary_unary(
        LIST_PRODUCTS,
        request_serializer=ps.ListProductsRequest.SerializeToString,
        response_deserializer=ps.ListProductsResponse.FromString,
    )
    request = ps.ListProductsRequest(page_size=1, page_token=page_token, seller_id=seller_id)
    return await call(request, timeout=5)


async def refused(world: World, call: Any, field: str) -> None:
    """The call fails with INVALID_ARGUMENT naming ``field``, and nothing changed."""
    before = await world.state()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = from_rpc_error(caught.value)
    assert isinstance(error, InvalidArgument), error
    assert field in {v.field for v in error.violations}, error.violations
    assert await world.state() == before


async def test_page_sizes(world: World) -> None:
    default = await list_users(world, page_size=0)
    assert len(default.users) == 50 and default.next_page_token
    everything = await list_users(world, page_size=2**31 - 1)
    assert len(everything.users) == USERS and not everything.next_page_token
    one = await list_users(world, page_size=1)
    assert len(one.users) == 1 and one.next_page_token
    for size in (-1, -(2**31)):
        await refused(world, list_users(world, page_size=size), "page_size")


def forgeries(token: str) -> dict[str, str]:
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    flipped = raw[:-1] + bytes([raw[-1] ^ 1])

    def encode(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return {
        "tag flipped": encode(flipped),
        "other id, old tag": encode(raw[:1] + b"zzzzzzzz" + raw[-16:]),
        "tag cut off": encode(raw[:-16]),
        "not base64": "!!!***",
        "empty body": encode(b"\x01" + b"\x00" * 16),
        "other version": encode(b"\x02" + raw[1:]),
        "huge": "A" * 10_000,
    }


async def test_forged_page_tokens_are_refused(world: World) -> None:
    token = (await list_users(world, page_size=5)).next_page_token
    for name, forged in forgeries(token).items():
        try:
            await refused(world, list_users(world, page_size=5, page_token=forged), "page_token")
        except AssertionError as err:
            raise AssertionError(f"{name}: {err}") from err


async def test_a_token_from_another_query_is_refused(world: World) -> None:
    template = world.templates["/switchboard.product.v1.ProductService/ListProducts"]
    assert isinstance(template, ps.ListProductsRequest)
    seller = template.seller_id
    create = world.channels["product"].unary_unary(
        "/switchboard.product.v1.ProductService/CreateProduct",
        request_serializer=ps.CreateProductRequest.SerializeToString,
        response_deserializer=ps.CreateProductResponse.FromString,
    )
    price = product_pb2.Money(currency_code="EUR", amount_minor=1)
    product = product_pb2.Product(sku="SKU-P2", name="n", price=price, seller_id=seller)
    await create(ps.CreateProductRequest(product=product), timeout=5)

    users_token = (await list_users(world, page_size=1)).next_page_token
    seller_token = (await list_products(world, seller_id=seller)).next_page_token
    all_token = (await list_products(world)).next_page_token
    assert users_token and seller_token and all_token
    await refused(world, list_products(world, page_token=users_token), "page_token")
    await refused(world, list_users(world, page_token=all_token), "page_token")
    await refused(world, list_products(world, page_token=seller_token), "page_token")
    await refused(world, list_products(world, page_token=all_token, seller_id=seller), "page_token")
    other_seller = "0" * 26
    await refused(
        world, list_products(world, page_token=seller_token, seller_id=other_seller), "page_token"
    )


async def test_a_stale_token_continues_after_its_deleted_item(world: World) -> None:
    everyone = [u.id for u in (await list_users(world, page_size=1000)).users]
    first = await list_users(world, page_size=7)
    deleted = first.users[-1].id
    delete = world.channels["user"].unary_unary(
        "/switchboard.user.v1.UserService/DeleteUser",
        request_serializer=us.DeleteUserRequest.SerializeToString,
        response_deserializer=us.DeleteUserResponse.FromString,
    )
    await delete(us.DeleteUserRequest(id=deleted), timeout=5)
    seen = [u.id for u in first.users]
    token = first.next_page_token
    for _ in range(USERS):  # bounded: one page per user at most
        if not token:
            break
        page = await list_users(world, page_size=7, page_token=token)
        seen += [u.id for u in page.users]
        token = page.next_page_token
    assert seen == everyone, "a page was skipped or repeated"
