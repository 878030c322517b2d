"""End to end: ``python -m services.product`` as real processes, alone and with a registry."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import grpc.aio
import pytest

from harness import StartProcess
from services.product import ProductStore
from services.runtime import errors as e
from services.runtime import from_rpc_error
from switchboard.product.v1 import product_service_pb2 as pb
from switchboard.product.v1 import product_service_pb2_grpc
from switchboard.user.v1 import user_pb2, user_service_pb2, user_service_pb2_grpc
from tests._support import failure
from tests.product._support import WAIT, new_product, reserve
from tests.reliability._support.rawh2 import call_once

pytestmark = pytest.mark.e2e


async def _seed_product(data_dir: Path, stock: int) -> str:
    """Create a product straight in the shared file (this test is one more process on it)."""
    store = ProductStore.open(data_dir)
    try:
        return (
            await store.create(new_product(stock=stock), "", None, pb.CreateProductResponse)
        ).product.id
    finally:
        store.close()


async def test_two_processes_on_one_file_never_oversell(
    start_process: StartProcess, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    product_id = await _seed_product(data, stock=10)
    processes = [await start_process("services.product", "--data-dir", str(data)) for _ in range(2)]
    async with (
        grpc.aio.insecure_channel(processes[0].address) as one,
        grpc.aio.insecure_channel(processes[1].address) as two,
    ):
        stubs = [product_service_pb2_grpc.ProductServiceStub(c) for c in (one, two)]
        calls = [reserve(stubs[i % 2], product_id, 1, f"r-{i}") for i in range(40)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        # The same request ids again, through the other process: nothing more is reserved.
        retries = [reserve(stubs[(i + 1) % 2], product_id, 1, f"r-{i}") for i in range(40)]
        again = await asyncio.gather(*retries, return_exceptions=True)
    won = [r for r in results if isinstance(r, pb.ReserveStockResponse)]
    lost = [from_rpc_error(r) for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 10 and {err.reason for err in lost} == {"INSUFFICIENT_STOCK"}
    assert sum(isinstance(r, pb.ReserveStockResponse) for r in again) == 10
    check = sqlite3.connect(data / "product.db")
    assert check.execute("SELECT stock FROM products").fetchall() == [(0,)]
    assert check.execute("SELECT count(*) FROM reservations").fetchone() == (10,)
    check.close()
    assert [await p.stop() for p in processes] == [0, 0]


async def test_acknowledged_reservation_survives_sigkill(
    start_process: StartProcess, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    product_id = await _seed_product(data, stock=3)
    first = await start_process("services.product", "--data-dir", str(data))
    async with grpc.aio.insecure_channel(first.address) as channel:
        stub = product_service_pb2_grpc.ProductServiceStub(channel)
        reply = await reserve(stub, product_id, 2, "kill-1")
    first.signal(signal.SIGKILL)
    assert await first.wait_exit() == -signal.SIGKILL
    second = await start_process("services.product", "--data-dir", str(data))
    async with grpc.aio.insecure_channel(second.address) as channel:
        stub = product_service_pb2_grpc.ProductServiceStub(channel)
        assert (await reserve(stub, product_id, 2, "kill-1")) == reply  # the stored answer
        product = await stub.GetProduct(pb.GetProductRequest(id=product_id), timeout=WAIT)
        assert product.product.stock == 1
    assert await second.stop() == 0
    check = sqlite3.connect(data / "product.db")
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    check.close()


async def test_seller_check_through_the_registry_and_the_user_service(
    start_process: StartProcess, tmp_path: Path
) -> None:
    registry = await start_process("registry")
    found_by = ("--registry", registry.address, "--registry-ttl-s", "30")
    user = await start_process("services.user", "--data-dir", str(tmp_path / "u"), *found_by)
    product = await start_process("services.product", "--data-dir", str(tmp_path / "p"), *found_by)
    async with (
        grpc.aio.insecure_channel(user.address) as user_channel,
        grpc.aio.insecure_channel(product.address) as product_channel,
    ):
        users = user_service_pb2_grpc.UserServiceStub(user_channel)
        products = product_service_pb2_grpc.ProductServiceStub(product_channel)
        seller = user_pb2.User(email="seller@example.com", display_name="Seller")
        request = user_service_pb2.CreateUserRequest(user=seller)
        seller_id = (await users.CreateUser(request, timeout=WAIT)).user.id

        def create(sku: str, seller: str) -> pb.CreateProductRequest:
            return pb.CreateProductRequest(product=new_product(sku=sku, seller_id=seller))

        created = await products.CreateProduct(create("OK-1", seller_id), timeout=WAIT)
        assert created.product.seller_id == seller_id
        unknown = await failure(products.CreateProduct(create("NO-1", "ghost"), timeout=WAIT))
        assert isinstance(unknown, e.FailedPrecondition) and unknown.reason == "SELLER_NOT_FOUND"

        # A seller the projection does not hold (a user created a moment ago would be one)
        # is checked with GetUser: what the user service being slow or gone does to that.
        unseen = "0190ffffffffffffffffffffffffffff"
        user.signal(signal.SIGSTOP)  # the user service hangs: the caller's deadline runs out
        try:
            # A raw HTTP/2 call sends grpc-timeout and never cancels, so what ends the call
            # is the product service giving up (a grpc client's own deadline would reach it
            # as a cancel first under load, and be logged CANCELLED).
            path = "/switchboard.product.v1.ProductService/CreateProduct"
            message = create("SLOW-1", unseen).SerializeToString()
            slow = await call_once(product.address, path, message, [("grpc-timeout", "1S")], 15.0)
            assert slow.grpc_status == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
            await product.wait_output("CreateProduct code=DEADLINE_EXCEEDED", timeout_s=10)
        finally:
            user.signal(signal.SIGCONT)

        user.signal(signal.SIGKILL)  # the user service is gone: retries, then UNAVAILABLE
        await user.wait_exit()
        down = await failure(products.CreateProduct(create("DOWN-1", unseen), timeout=4.0))
        assert isinstance(down, e.Unavailable)
    assert await product.stop() == 0
