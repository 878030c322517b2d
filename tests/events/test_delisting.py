"""End to end, real processes: the product service consumes the user service's change log.

A deleted seller's products become DELISTED and their reservations are
released, exactly once: across SIGKILLed and restarted product processes,
while the user service is down, and with two product instances consuming
together. Each test prints DeleteUser -> DELISTED latencies (figures, not
assertions: speed belongs to bench/).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc.aio

from harness import Launcher
from switchboard.product.v1 import product_pb2
from switchboard.product.v1 import product_service_pb2 as pb
from switchboard.user.v1 import user_service_pb2, user_service_pb2_grpc
from tests.events._world import CALL_S, INITIAL_STOCK, Seller, World, latencies_ms, percentile
from tests.observability._support import http_address, scrape

_DELISTED = product_pb2.PRODUCT_STATE_DELISTED
_ET = product_pb2.ProductEventType
CATCH_UP_S = 30.0
"""Bound on waiting for the consumer to catch up (it takes well under a second unloaded)."""


def _check_exactly_once(world: World, sellers: list[Seller], kept: list[Seller]) -> None:
    """Every product of ``sellers`` DELISTED once, each reservation released once, stock
    back to its initial value; ``kept`` sellers' products untouched."""
    counts, released, rows = world.log_counts(), world.released(), world.stock_and_state()
    for seller in sellers:
        for product_id in seller.products:
            assert counts["DELISTED"][product_id] == 1, product_id
            assert rows[product_id] == (INITIAL_STOCK, _DELISTED), product_id
        for reservation_id in seller.reservations:
            assert released[reservation_id] == 1, reservation_id
    for seller in kept:
        for product_id in seller.products:
            assert counts["DELISTED"][product_id] == 0
            assert rows[product_id][1] == product_pb2.PRODUCT_STATE_ACTIVE
    assert all(n == 1 for n in released.values())


def _report(name: str, world: World, sellers: list[Seller]) -> None:
    values = latencies_ms(world, sellers)
    print(
        f"\n{name}: DeleteUser -> DELISTED over {len(values)} sellers:"
        f" p50 {percentile(values, 0.5):.1f} ms, p99 {percentile(values, 0.99):.1f} ms,"
        f" max {values[-1]:.1f} ms"
    )


async def test_a_deleted_seller_s_products_are_delisted_and_stock_restored(
    tmp_path: Path,
) -> None:
    async with Launcher(tmp_path) as launch:
        world = await World.start(launch, tmp_path)
        (ada,) = await world.seed(1, products=3, reserved=2)
        async with grpc.aio.insecure_channel(world.products[0].address) as channel:
            stub = world.product_stub(channel)
            watch = stub.WatchProducts(pb.WatchProductsRequest(start_revision=0))
            request = user_service_pb2.DeleteUserRequest(id=ada.user_id)
            async with grpc.aio.insecure_channel(world.user.address) as uc:
                users = user_service_pb2_grpc.UserServiceStub(uc)
                deletion = await users.DeleteUser(request, timeout=CALL_S)
            deleted = time.monotonic()
            kinds: list[tuple[int, str]] = []
            while sum(kind == _ET.PRODUCT_EVENT_TYPE_DELISTED for kind, _ in kinds) < 3:
                response = await asyncio.wait_for(watch.read(), CALL_S)
                assert isinstance(response, pb.WatchProductsResponse), response
                event = response.event
                kinds.append((event.type, event.product.id))
            took = time.monotonic() - deleted
            watch.cancel()
            for product_id in ada.products:
                product = (await stub.GetProduct(pb.GetProductRequest(id=product_id))).product
                assert (product.state, product.stock) == (_DELISTED, INITIAL_STOCK)
        released = [pid for kind, pid in kinds if kind == _ET.PRODUCT_EVENT_TYPE_STOCK_RELEASED]
        assert sorted(released) == sorted(ada.products[:2])
        print(f"\nDeleteUser -> all 3 DELISTED seen on the product Watch: {took * 1000:.0f} ms")
        _check_exactly_once(world, [ada], [])
        # Lag is visible: the product process exports the checkpoint and the head it saw.
        exposition = await scrape(http_address(world.products[0]))
        subscription = '{subscription="product<-user"}'
        for gauge in ("checkpoint_revision", "head_revision"):
            line = f"switchboard_subscription_{gauge}{subscription} {float(deletion.revision)}"
            assert line in exposition, exposition


async def test_exactly_once_while_the_product_process_is_killed_twice(tmp_path: Path) -> None:
    async with Launcher(tmp_path) as launch:
        world = await World.start(launch, tmp_path)
        sellers = await world.seed(110, products=2, reserved=1)
        doomed, kept = sellers[:100], sellers[100:]
        product, at_kill = world.products[0], [0]
        chunks = [doomed[:30], doomed[30:60], doomed[60:]]
        await world.delete(chunks[0], concurrency=4)
        for chunk in chunks[1:]:  # SIGKILL mid-burst, twice, while the consumer is applying
            await _until_delisted_beyond(world, at_kill[-1])
            product.kill()
            at_kill.append(_delisted(world))
            await asyncio.gather(world.delete(chunk, concurrency=4), product.restart())
        at_kill.pop(0)
        await world.wait_delisted(doomed, CATCH_UP_S)
        _check_exactly_once(world, doomed, kept)
        counts = world.log_counts()
        print(
            f"\ncrash test: {product.starts} product starts, products DELISTED when killed:"
            f" {at_kill} (of 60, 120 deleted by then),"
            f" {len(counts['DELISTED'])} products DELISTED once each"
            f" (of {sum(len(s.products) for s in doomed)}),"
            f" {len(world.released())} reservations released once each"
            f" (of {sum(len(s.reservations) for s in doomed)})"
        )
        _report("crash test", world, doomed)


async def test_the_product_service_serves_while_the_user_service_is_down(
    tmp_path: Path,
) -> None:
    async with Launcher(tmp_path) as launch:
        world = await World.start(launch, tmp_path)
        *sellers, spare = await world.seed(41, products=1, reserved=0)
        await world.delete(sellers[:20])
        world.user.kill()
        await world.user.wait_exit()
        served = await _serve_for(world, spare, seconds=10.0)
        assert served > 0
        await world.user.restart()
        await world.delete(sellers[20:])
        await world.wait_delisted(sellers, CATCH_UP_S)
        _check_exactly_once(world, sellers, [spare])
        print(f"\nuser service down 10 s: product served {served} reserve+release pairs")


async def test_two_product_instances_consume_without_double_effects(tmp_path: Path) -> None:
    async with Launcher(tmp_path) as launch:
        world = await World.start(launch, tmp_path, product_instances=2)
        sellers = await world.seed(60, products=2, reserved=1)
        await world.delete(sellers[:50])
        await world.wait_delisted(sellers[:50], CATCH_UP_S)
        _check_exactly_once(world, sellers[:50], sellers[50:])
        _report("two instances", world, sellers[:50])


def _delisted(world: World) -> int:
    return sum(world.log_counts()["DELISTED"].values())


async def _until_delisted_beyond(world: World, count: int) -> None:
    """Until the consumer has applied something past ``count`` delistings (it is running)."""
    deadline = time.monotonic() + CATCH_UP_S
    while _delisted(world) <= count:
        assert time.monotonic() < deadline, "the consumer applied nothing"
        await asyncio.sleep(0.005)  # polling the product log: no event reaches the test


async def _serve_for(world: World, seller: Seller, seconds: float) -> int:
    """Reserve and release on ``seller``'s product for ``seconds``; how many pairs succeeded."""
    pairs, end = 0, time.monotonic() + seconds
    async with grpc.aio.insecure_channel(world.products[0].address) as channel:
        stub = world.product_stub(channel)
        while time.monotonic() < end and pairs < 10_000:
            take = pb.ReserveStockRequest(
                product_id=seller.products[0], quantity=1, request_id=f"down-{pairs}"
            )
            reply = await stub.ReserveStock(take, timeout=CALL_S)
            release = pb.ReleaseStockRequest(reservation_id=reply.reservation.id)
            await stub.ReleaseStock(release, timeout=CALL_S)
            await stub.GetProduct(pb.GetProductRequest(id=seller.products[0]), timeout=CALL_S)
            pairs += 1
    return pairs
