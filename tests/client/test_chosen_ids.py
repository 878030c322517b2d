"""Typed clients: ``create_user(user_id=)`` and ``create_product(product_id=)`` (AIP-133 ids).

Against the real user and product servicers (in-process, port 0, production
``create_server``), so the test shows the field reaches the server and the
server's answers come back as typed errors.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from harness import start_server
from services.product import PAGE_TOKEN_SECRET as PRODUCT_SECRET
from services.product import SqliteProductStore, product_service
from services.product.client import ProductClient
from services.runtime import (
    Client,
    ClientConfig,
    SyncClient,
    errors,
)
from services.user import PAGE_TOKEN_SECRET as USER_SECRET
from services.user import SqliteUserStore, user_service
from services.user.client import UserClient
from switchboard.product.v1 import product_pb2

_SERVER_ID = re.compile(r"[0-9a-f]{32}")
_PRICE = product_pb2.Money(currency_code="EUR", amount_minor=1999)
_SELLER = "seller-1"


class _Sellers:
    """Every seller exists (the seller check is not what these tests are about)."""

    async def exists(self, seller_id: str) -> bool:
        return True


@pytest.fixture
async def addresses(tmp_path: Path) -> AsyncIterator[dict[str, tuple[str]]]:
    """A started user and product service, by registry name."""
    users = SqliteUserStore.open(tmp_path)
    products = SqliteProductStore.open(tmp_path)
    user_server = await start_server([user_service(users, users.db.secret(USER_SECRET))])
    secret = products.db.secret(PRODUCT_SECRET)
    product_server = await start_server([product_service(products, _Sellers(), secret)])
    yield {"user": (user_server.address,), "product": (product_server.address,)}
    await user_server.stop()
    await product_server.stop()
    users.close()
    products.close()


@pytest.fixture
async def client(addresses: dict[str, tuple[str]]) -> AsyncIterator[Client]:
    async with Client(ClientConfig(static=addresses, default_timeout_s=5)) as connected:
        yield connected


async def test_create_user_with_a_chosen_id(client: Client) -> None:
    users = await UserClient.connect(client)
    ada = await users.create_user(email="ada@example.com", display_name="Ada", user_id="ada")
    assert ada.id == "ada"
    assert (await users.get_user("ada")).email == "ada@example.com"
    with pytest.raises(errors.AlreadyExists) as taken:
        await users.create_user(email="other@example.com", display_name="O", user_id="ada")
    assert taken.value.reason == "USER_ALREADY_EXISTS"


async def test_create_user_without_an_id_gets_one_from_the_server(client: Client) -> None:
    users = await UserClient.connect(client)
    user = await users.create_user(email="grace@example.com", display_name="Grace")
    assert _SERVER_ID.fullmatch(user.id)


async def test_create_user_rejects_a_malformed_chosen_id(client: Client) -> None:
    users = await UserClient.connect(client)
    with pytest.raises(errors.InvalidArgument) as bad:
        await users.create_user(email="ada@example.com", display_name="Ada", user_id="Ada!")
    assert [v.field for v in bad.value.violations] == ["user_id"]


async def test_create_user_retried_with_a_chosen_id_is_applied_once(client: Client) -> None:
    users = await UserClient.connect(client)
    first, again = [
        await users.create_user(
            email="ada@example.com", display_name="Ada", user_id="ada", request_id="r-1"
        )
        for _ in range(2)
    ]
    assert first == again


async def test_create_product_with_a_chosen_id(client: Client) -> None:
    products = await ProductClient.connect(client)
    lamp = await products.create_product(
        sku="LAMP-1", name="Lamp", price=_PRICE, seller_id=_SELLER, product_id="lamp-1"
    )
    assert lamp.id == "lamp-1"
    assert (await products.get_product("lamp-1")).sku == "LAMP-1"
    with pytest.raises(errors.AlreadyExists) as taken:
        await products.create_product(
            sku="LAMP-2", name="Lamp", price=_PRICE, seller_id=_SELLER, product_id="lamp-1"
        )
    assert taken.value.reason == "PRODUCT_ALREADY_EXISTS"


async def test_create_product_without_an_id_gets_one_from_the_server(client: Client) -> None:
    products = await ProductClient.connect(client)
    lamp = await products.create_product(sku="LAMP-1", name="Lamp", price=_PRICE, seller_id="s")
    assert _SERVER_ID.fullmatch(lamp.id)


async def test_sync_client_passes_the_chosen_ids(addresses: dict[str, tuple[str]]) -> None:
    def script() -> tuple[str, str]:
        with SyncClient(ClientConfig(static=addresses, default_timeout_s=5)) as sync:
            user = sync.typed(UserClient).create_user(email="a@b.cd", display_name="A", user_id="a")
            product = sync.typed(ProductClient).create_product(
                sku="S-1", name="S", price=_PRICE, seller_id=user.id, product_id="s-1"
            )
            return user.id, product.id

    assert await asyncio.to_thread(script) == ("a", "s-1")
