"""Deadline and request id propagation across two hops: caller -> product -> user."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from harness import start_server
from harness.fakes import FakeProducts, products_service
from services.product.client import ProductClient
from services.runtime import ServerConfig, errors, request_scope
from services.runtime.client._client import Client, ClientConfig
from services.user.client import UserClient
from tests._support import LoopLag
from tests.client._support import Instance, StartUsers


@dataclass
class Hops:
    users: Instance
    products: FakeProducts
    client: ProductClient


@pytest.fixture
async def hops(start_users: StartUsers) -> AsyncIterator[Hops]:
    users = await start_users("downstream")
    async with Client(ClientConfig(static={"user": (users.address,)})) as inner:
        products = FakeProducts(await UserClient.connect(inner))
        server = await start_server([products_service(products)], ServerConfig(grace_s=0))
        outer = Client(ClientConfig(static={"product": (server.address,)}))
        try:
            client = await ProductClient.connect(outer)
            # Both hops connected before a test times anything; then forget the warm-up.
            await client.get_product("p1", timeout_s=10.0)
            users.servicer.calls.clear()
            users.servicer.seen_remaining.clear()
            users.servicer.seen_request_ids.clear()
            products.seen_remaining.clear()
            yield Hops(users, products, client)
        finally:
            await outer.close()
            await server.stop()


async def test_deadline_shrinks_along_the_way(hops: Hops) -> None:
    product = await hops.client.get_product("p1", timeout_s=1.0)
    assert product.seller_id == "downstream"
    (middle,) = hops.products.seen_remaining
    (last,) = hops.users.servicer.seen_remaining
    assert middle is not None and last is not None
    # gRPC's grpc-timeout header rounds up: the first hop may see a few ms more.
    assert middle <= 1.0 + 0.015
    assert last < 1.0  # the downstream server saw less than the caller set
    assert middle - last >= 0.015  # the propagation margin (20 ms) was taken off


async def test_downstream_inherits_the_callers_deadline_not_the_default(hops: Hops) -> None:
    hops.users.servicer.default_sleep = 3.0  # far beyond the caller's deadline
    start = time.monotonic()
    async with LoopLag() as lag:
        with pytest.raises(errors.DeadlineExceeded):
            await hops.client.get_product("p1", timeout_s=0.4)
    assert 0.35 <= time.monotonic() - start <= 0.45 + lag.worst
    (last,) = hops.users.servicer.seen_remaining
    assert last is not None and last <= 0.4


async def test_request_id_travels_to_the_last_hop(hops: Hops) -> None:
    with request_scope(request_id="req-42"):
        await hops.client.get_product("p1")
    assert hops.users.servicer.seen_request_ids == ["req-42"]


async def test_reserve_stock_gets_a_request_id(hops: Hops) -> None:
    first = await hops.client.reserve_stock("p1", 2)
    again = await hops.client.reserve_stock("p1", 2, request_id="fixed")
    same = await hops.client.reserve_stock("p1", 2, request_id="fixed")
    assert first.reservation.id != again.reservation.id == same.reservation.id
