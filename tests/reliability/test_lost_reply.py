"""A lost reply: the server committed, the client never heard. A retry applies nothing twice.

The fault proxy drops the first reply a server starts to send (by then the
handler has returned, so its transaction is committed) and resets the
connection; the client sees UNAVAILABLE. Retried with the same request_id -
by the client runtime's own retry, or by hand on a plain channel - the call
returns the first result, and the change log holds exactly one event for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from harness import Launcher, Process
from services.product.client import ProductClient
from services.runtime import Client, ClientConfig, RetrySettings
from services.user.client import UserClient
from switchboard.product.v1 import product_pb2
from switchboard.user.v1 import user_pb2
from switchboard.user.v1 import user_service_pb2 as us
from tests.reliability._support.proxy import FaultProxy
from tests.reliability._support.waits import close_stream

pytestmark = pytest.mark.e2e

EUR = product_pb2.Money(currency_code="EUR", amount_minor=1999)


@dataclass
class Services:
    user: Process
    product: Process
    direct: Client  # straight to the processes
    proxied: Client  # through the proxies, which can lose replies
    user_proxy: FaultProxy
    product_proxy: FaultProxy


@pytest.fixture
async def services(launcher: Launcher, tmp_path: Path) -> AsyncIterator[Services]:
    user = await launcher.start("services.user", "--data-dir", str(tmp_path / "user"))
    product = await launcher.start(
        "services.product",
        *("--data-dir", str(tmp_path / "product")),
        env={"SWITCHBOARD_ADDRESSES_USER": user.address},
    )
    proxies = [FaultProxy("127.0.0.1", proc.port) for proc in (user, product)]
    for proxy in proxies:
        await proxy.start()
    retry = RetrySettings(max_attempts=5, initial_backoff_s=0.02)
    direct = Client(ClientConfig(static={"user": (user.address,), "product": (product.address,)}))
    proxied = Client(
        ClientConfig(
            static={"user": (proxies[0].address,), "product": (proxies[1].address,)},
            retry=retry,
        )
    )
    try:
        yield Services(user, product, direct, proxied, *proxies)
    finally:
        for client in (direct, proxied):
            await client.close()
        for proxy in proxies:
            await proxy.close()


async def events(
    stream: AsyncIterator[Any], quiet_s: float = 1.0, first_s: float = 10.0
) -> list[Any]:
    """Every event of a change log from the start (the log's end: nothing new for a while).

    The logs read here are never empty: the first event gets ``first_s`` (a busy machine),
    then ``quiet_s`` of silence ends the log.
    """
    seen: list[Any] = []
    try:
        while True:
            limit_s = quiet_s if seen else first_s
            seen.append(await asyncio.wait_for(anext(stream), limit_s))
    except TimeoutError:
        return seen
    finally:
        await close_stream(stream)


async def test_a_create_user_whose_reply_is_lost_is_applied_once(services: Services) -> None:
    users = await UserClient.connect(services.proxied)
    services.user_proxy.lose_next_reply()
    created = await users.create_user(
        email="once@example.com", display_name="Once", request_id="create-once-1"
    )
    assert services.user_proxy.replies_lost == 1  # the first reply really was lost
    direct = await UserClient.connect(services.direct)
    everyone = (await direct.list_users(page_size=1000)).users
    assert [u.id for u in everyone if u.email == "once@example.com"] == [created.id]
    log = await events(direct.watch_users(0))
    assert [e.user.id for e in log if e.type == user_pb2.USER_EVENT_TYPE_CREATED] == [created.id]


async def hand_retry(
    call: Callable[[], Awaitable[us.CreateUserResponse]], attempts: int = 3
) -> us.CreateUserResponse:
    """Call again, as a person retrying by hand would, while the transport still fails.

    The lost reply closes the proxied connection; a retry sent before the channel has
    noticed can die with it ("Stream removed", UNAVAILABLE or UNKNOWN). Retrying more
    only makes the claim stronger: the same request id is still applied once.
    """
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except grpc.aio.AioRpcError as err:
            transport = err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN)
            if attempt == attempts or not transport:
                raise
    raise AssertionError("unreachable")


async def test_a_hand_retried_create_on_a_plain_channel_is_applied_once(
    services: Services,
) -> None:
    request = us.CreateUserRequest(
        user=user_pb2.User(email="plain@example.com", display_name="Plain"),
        request_id="create-plain-1",
    )
    services.user_proxy.lose_next_reply()
    async with grpc.aio.insecure_channel(services.user_proxy.address) as channel:
        create: Callable[..., Awaitable[us.CreateUserResponse]] = channel.unary_unary(
            "/switchboard.user.v1.UserService/CreateUser",
            request_serializer=us.CreateUserRequest.SerializeToString,
            response_deserializer=us.CreateUserResponse.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await create(request, timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value
        first = await hand_retry(lambda: create(request, timeout=5, wait_for_ready=True))
        again = await create(request, timeout=5)
    assert first.user == again.user
    direct = await UserClient.connect(services.direct)
    everyone = (await direct.list_users(page_size=1000)).users
    assert [u.id for u in everyone if u.email == "plain@example.com"] == [first.user.id]


async def test_a_reserve_whose_reply_is_lost_takes_stock_once(services: Services) -> None:
    seller = await (await UserClient.connect(services.direct)).create_user(
        email="seller@example.com", display_name="Seller"
    )
    direct = await ProductClient.connect(services.direct)
    product = await direct.create_product(
        sku="LOST-1", name="Lamp", price=EUR, seller_id=seller.id, stock=10
    )
    proxied = await ProductClient.connect(services.proxied)
    services.product_proxy.lose_next_reply()
    reserved = await proxied.reserve_stock(product.id, 3, request_id="reserve-once-1")
    assert services.product_proxy.replies_lost == 1
    assert reserved.product.stock == 7
    assert (await direct.get_product(product.id)).stock == 7
    log = await events(direct.watch_products(0))
    reservations = [e for e in log if e.type == product_pb2.PRODUCT_EVENT_TYPE_STOCK_RESERVED]
    assert [e.reservation.id for e in reservations] == [reserved.reservation.id]


async def test_a_create_product_whose_reply_is_lost_is_applied_once(services: Services) -> None:
    seller = await (await UserClient.connect(services.direct)).create_user(
        email="maker@example.com", display_name="Maker"
    )
    proxied = await ProductClient.connect(services.proxied)
    services.product_proxy.lose_next_reply()
    created = await proxied.create_product(
        sku="LOST-2", name="Chair", price=EUR, seller_id=seller.id, stock=1,
        request_id="create-product-once-1",
    )  # fmt: skip
    assert services.product_proxy.replies_lost == 1
    direct = await ProductClient.connect(services.direct)
    listed = (await direct.list_products(page_size=1000)).products
    assert [p.id for p in listed if p.sku == "LOST-2"] == [created.id]
