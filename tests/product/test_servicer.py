"""ProductService through a real in-process gRPC server: every RPC, every contract status."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import grpc.aio
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.rpc import error_details_pb2  # type: ignore[import-untyped, unused-ignore]

from services.product import ProductStore
from services.runtime import errors as e
from services.runtime import from_rpc_error
from switchboard.product.v1 import product_pb2
from switchboard.product.v1 import product_service_pb2 as pb
from tests._support import failure
from tests.product._support import (
    SELLER,
    WAIT,
    FakeSellers,
    create,
    new_product,
    read_event,
    reserve,
)
from tests.storage._backends import count

if TYPE_CHECKING:
    from switchboard.product.v1.product_service_pb2_grpc import ProductServiceAsyncStub

ET = product_pb2.ProductEventType


async def _count(store: ProductStore, table: str) -> int:
    return await count(store, table)


# --- CreateProduct ------------------------------------------------------------------


async def test_create_returns_the_product_with_server_fields(
    stub: ProductServiceAsyncStub, sellers: FakeSellers
) -> None:
    product = await create(stub)
    assert len(product.id) == 32 and product.etag and product.create_time.seconds > 0
    assert (product.sku, product.stock, product.seller_id) == ("LAMP-1", 10, SELLER)
    assert (product.price.currency_code, product.price.amount_minor) == ("EUR", 1999)
    assert sellers.calls == [SELLER]


def _with(**changes: object) -> product_pb2.Product:
    product = new_product()
    for name, value in changes.items():
        if name == "price":
            assert isinstance(value, product_pb2.Money)
            product.price.CopyFrom(value)
        else:
            setattr(product, name, value)
    return product


def _money(code: str, amount: int = 1) -> product_pb2.Money:
    return product_pb2.Money(currency_code=code, amount_minor=amount)


@pytest.mark.parametrize(
    ("product", "field"),
    [
        (_with(sku=""), "product.sku"),
        (_with(sku="has space"), "product.sku"),
        (_with(sku="x" * 65), "product.sku"),
        (_with(name=""), "product.name"),
        (_with(name="n" * 201), "product.name"),
        (_with(description="d" * 4001), "product.description"),
        (_with(price=_money("eur")), "product.price.currency_code"),
        (_with(price=_money("EURO")), "product.price.currency_code"),
        (_with(price=_money("ABC")), "product.price.currency_code"),
        (_with(price=_money("XXX")), "product.price.currency_code"),
        (_with(price=_money("USD", -1)), "product.price.amount_minor"),
        (_with(stock=-1), "product.stock"),
        (_with(seller_id=""), "product.seller_id"),
        (_with(seller_id="s" * 65), "product.seller_id"),
    ],
)
async def test_create_rejects_each_malformed_field(
    stub: ProductServiceAsyncStub, sellers: FakeSellers, product: product_pb2.Product, field: str
) -> None:
    error = await failure(stub.CreateProduct(pb.CreateProductRequest(product=product)))
    assert isinstance(error, e.InvalidArgument)
    assert [v.field for v in error.violations] == [field]
    assert sellers.calls == []  # nothing is asked before the request is valid


async def test_create_without_a_price_is_invalid(stub: ProductServiceAsyncStub) -> None:
    product = new_product()
    product.ClearField("price")
    error = await failure(stub.CreateProduct(pb.CreateProductRequest(product=product)))
    assert isinstance(error, e.InvalidArgument)
    assert [v.field for v in error.violations] == ["product.price"]


async def test_create_reports_every_bad_field(stub: ProductServiceAsyncStub) -> None:
    product = _with(sku="", name="", price=_money("x", -5), stock=-1, seller_id="")
    request = pb.CreateProductRequest(product=product, request_id="r" * 65)
    error = await failure(stub.CreateProduct(request, timeout=WAIT))
    assert isinstance(error, e.InvalidArgument)
    assert [v.field for v in error.violations] == [
        "product.sku",
        "product.name",
        "product.price.currency_code",
        "product.price.amount_minor",
        "product.stock",
        "product.seller_id",
        "request_id",
    ]


async def test_create_with_a_taken_sku_is_already_exists(stub: ProductServiceAsyncStub) -> None:
    await create(stub, sku="SKU-1")
    error = await failure(create(stub, sku="SKU-1"))
    assert isinstance(error, e.AlreadyExists) and error.reason == "SKU_ALREADY_EXISTS"
    assert (error.resource_type, error.resource_name) == ("switchboard.product.v1.Product", "SKU-1")
    await create(stub, sku="sku-1")  # SKUs compare exactly


async def test_create_with_an_unknown_seller_is_failed_precondition(
    stub: ProductServiceAsyncStub, store: ProductStore
) -> None:
    request = pb.CreateProductRequest(product=_with(seller_id="nobody"))
    error = await failure(stub.CreateProduct(request, timeout=WAIT))
    assert isinstance(error, e.FailedPrecondition) and error.reason == "SELLER_NOT_FOUND"
    assert error.metadata == {"seller_id": "nobody"}
    assert isinstance(error.details[0], error_details_pb2.PreconditionFailure)
    assert await _count(store, "products") == 0


@pytest.mark.parametrize(
    "downstream",
    [e.Unavailable("user service down"), e.DeadlineExceeded("too slow")],
    ids=["unavailable", "deadline"],
)
async def test_create_when_the_seller_cannot_be_checked(
    stub: ProductServiceAsyncStub,
    sellers: FakeSellers,
    store: ProductStore,
    downstream: e.SwitchboardError,
) -> None:
    sellers.failure = downstream
    error = await failure(stub.CreateProduct(pb.CreateProductRequest(product=new_product())))
    assert type(error) is type(downstream)
    assert await _count(store, "products") == 0


async def test_create_retried_with_the_same_request_id_is_applied_once(
    stub: ProductServiceAsyncStub, sellers: FakeSellers, store: ProductStore
) -> None:
    first = await create(stub, request_id="c-1")
    sellers.failure = e.Unavailable("down now")  # the retry does not need the user service
    assert await create(stub, request_id="c-1") == first
    assert (await _count(store, "products"), await _count(store, "events")) == (1, 1)


async def test_request_id_reused_for_another_product_is_invalid(
    stub: ProductServiceAsyncStub,
) -> None:
    await create(stub, sku="A", request_id="same")
    error = await failure(create(stub, sku="B", request_id="same"))
    assert isinstance(error, e.InvalidArgument)
    assert [v.field for v in error.violations] == ["request_id"]


async def test_create_with_a_chosen_id(stub: ProductServiceAsyncStub) -> None:
    request = pb.CreateProductRequest(product=new_product(), product_id="lamp")
    assert (await stub.CreateProduct(request, timeout=WAIT)).product.id == "lamp"
    again = pb.CreateProductRequest(product=new_product(sku="OTHER"), product_id="lamp")
    error = await failure(stub.CreateProduct(again, timeout=WAIT))
    assert isinstance(error, e.AlreadyExists) and error.reason == "PRODUCT_ALREADY_EXISTS"
    assert error.resource_name == "lamp"


@pytest.mark.parametrize("product_id", ["Lamp", "-lamp", "la mp", "x" * 64])
async def test_create_with_a_malformed_chosen_id_is_invalid(
    stub: ProductServiceAsyncStub, product_id: str
) -> None:
    request = pb.CreateProductRequest(product=new_product(), product_id=product_id)
    error = await failure(stub.CreateProduct(request, timeout=WAIT))
    assert isinstance(error, e.InvalidArgument)
    assert [v.field for v in error.violations] == ["product_id"]


# --- GetProduct ---------------------------------------------------------------------


async def test_get_returns_the_product(stub: ProductServiceAsyncStub) -> None:
    product = await create(stub)
    assert (await stub.GetProduct(pb.GetProductRequest(id=product.id))).product == product


async def test_get_unknown_is_not_found(stub: ProductServiceAsyncStub) -> None:
    error = await failure(stub.GetProduct(pb.GetProductRequest(id="nothing"), timeout=WAIT))
    assert isinstance(error, e.NotFound) and error.reason == "PRODUCT_NOT_FOUND"


async def test_get_without_an_id_is_invalid(stub: ProductServiceAsyncStub) -> None:
    error = await failure(stub.GetProduct(pb.GetProductRequest(), timeout=WAIT))
    assert isinstance(error, e.InvalidArgument)


# --- ListProducts -------------------------------------------------------------------


async def _list_all(
    stub: ProductServiceAsyncStub, page_size: int, seller_id: str = ""
) -> list[list[str]]:
    pages: list[list[str]] = []
    token = ""
    for _ in range(100):  # bounded
        request = pb.ListProductsRequest(page_size=page_size, page_token=token, seller_id=seller_id)
        response = await stub.ListProducts(request, timeout=WAIT)
        pages.append([p.id for p in response.products])
        token = response.next_page_token
        if not token:
            return pages
    raise AssertionError("paging did not end")


async def test_list_pages_in_id_order_and_filters_by_seller(
    stub: ProductServiceAsyncStub, sellers: FakeSellers
) -> None:
    sellers.known.add("other")
    mine = sorted([(await create(stub, sku=f"M{i}")).id for i in range(5)])
    request = pb.CreateProductRequest(product=_with(sku="O1", seller_id="other"))
    theirs = (await stub.CreateProduct(request, timeout=WAIT)).product.id
    assert await _list_all(stub, 2, seller_id=SELLER) == [mine[0:2], mine[2:4], mine[4:5]]
    assert await _list_all(stub, 2, seller_id="other") == [[theirs]]
    assert sum(await _list_all(stub, 4), []) == sorted([*mine, theirs])


async def test_list_big_pages_come_from_the_reader_thread(stub: ProductServiceAsyncStub) -> None:
    ids = sorted([(await create(stub, sku=f"S{i}")).id for i in range(110)])
    assert await _list_all(stub, 1000) == [ids]


async def test_list_token_of_another_seller_filter_is_invalid(
    stub: ProductServiceAsyncStub,
) -> None:
    for i in range(3):
        await create(stub, sku=f"T{i}")
    first = await stub.ListProducts(pb.ListProductsRequest(page_size=1, seller_id=SELLER))
    request = pb.ListProductsRequest(page_token=first.next_page_token, seller_id="other")
    error = await failure(stub.ListProducts(request, timeout=WAIT))
    assert isinstance(error, e.InvalidArgument)
    assert [v.field for v in error.violations] == ["page_token"]
    unfiltered = pb.ListProductsRequest(page_token=first.next_page_token)
    assert isinstance(await failure(stub.ListProducts(unfiltered, timeout=WAIT)), e.InvalidArgument)


async def test_list_negative_page_size_is_invalid(stub: ProductServiceAsyncStub) -> None:
    error = await failure(stub.ListProducts(pb.ListProductsRequest(page_size=-5), timeout=WAIT))
    assert isinstance(error, e.InvalidArgument)
    assert [v.field for v in error.violations] == ["page_size"]


async def test_list_forged_token_is_invalid(stub: ProductServiceAsyncStub) -> None:
    request = pb.ListProductsRequest(page_token="AXh4eHh4eHh4eHh4eHh4eHh4eHh4eA")
    error = await failure(stub.ListProducts(request, timeout=WAIT))
    assert isinstance(error, e.InvalidArgument)


# --- UpdateProduct ------------------------------------------------------------------


def _update(
    product: product_pb2.Product, *paths: str, request_id: str = ""
) -> pb.UpdateProductRequest:
    return pb.UpdateProductRequest(
        product=product, update_mask=FieldMask(paths=list(paths)), request_id=request_id
    )


async def test_update_changes_only_the_masked_fields(
    stub: ProductServiceAsyncStub, sellers: FakeSellers
) -> None:
    product = await create(stub)
    change = product_pb2.Product(
        id=product.id, name="Floor lamp", stock=3, price=_money("USD", 2500), sku="IGNORED"
    )
    updated = (await stub.UpdateProduct(_update(change, "name", "stock", "price"))).product
    assert (updated.name, updated.stock, updated.sku) == ("Floor lamp", 3, "LAMP-1")
    assert (updated.price.currency_code, updated.price.amount_minor) == ("USD", 2500)
    assert updated.etag != product.etag and updated.create_time == product.create_time
    assert sellers.calls == [SELLER]  # the seller did not change: no second check


async def test_update_to_a_new_seller_checks_it(
    stub: ProductServiceAsyncStub, sellers: FakeSellers
) -> None:
    product = await create(stub)
    sellers.known.add("new-seller")
    change = product_pb2.Product(id=product.id, seller_id="new-seller")
    moved = (await stub.UpdateProduct(_update(change, "seller_id"), timeout=WAIT)).product
    assert moved.seller_id == "new-seller"
    unknown = product_pb2.Product(id=product.id, seller_id="ghost")
    error = await failure(stub.UpdateProduct(_update(unknown, "seller_id"), timeout=WAIT))
    assert isinstance(error, e.FailedPrecondition) and error.reason == "SELLER_NOT_FOUND"
    sellers.failure = e.Unavailable("down")
    error = await failure(stub.UpdateProduct(_update(unknown, "seller_id"), timeout=WAIT))
    assert isinstance(error, e.Unavailable)


@pytest.mark.parametrize(
    ("paths", "why"),
    [((), "is required"), (("colour",), "unknown path"), (("id",), "read-only"),
     (("create_time",), "read-only"), (("price.amount_minor",), "unknown path")],
)  # fmt: skip
async def test_update_mask_must_name_updatable_fields(
    stub: ProductServiceAsyncStub, paths: tuple[str, ...], why: str
) -> None:
    product = await create(stub)
    error = await failure(stub.UpdateProduct(_update(product, *paths), timeout=WAIT))
    assert isinstance(error, e.InvalidArgument)
    assert [v.field for v in error.violations] == ["update_mask"]
    assert why in error.violations[0].description


async def test_update_checks_the_masked_values(stub: ProductServiceAsyncStub) -> None:
    product = await create(stub)
    bad = product_pb2.Product(id=product.id, stock=-1, price=_money("usd"))
    error = await failure(stub.UpdateProduct(_update(bad, "stock", "price"), timeout=WAIT))
    assert isinstance(error, e.InvalidArgument)
    assert [v.field for v in error.violations] == ["product.price.currency_code", "product.stock"]


async def test_update_with_a_stale_etag_is_aborted(stub: ProductServiceAsyncStub) -> None:
    product = await create(stub)
    await reserve(stub, product.id, 1, "r-1")  # a reservation changes the product too
    stale = product_pb2.Product(id=product.id, name="X", etag=product.etag)
    error = await failure(stub.UpdateProduct(_update(stale, "name"), timeout=WAIT))
    assert isinstance(error, e.Aborted) and error.reason == "ETAG_MISMATCH"


async def test_update_unknown_is_not_found(stub: ProductServiceAsyncStub) -> None:
    change = product_pb2.Product(id="nothing", name="X")
    error = await failure(stub.UpdateProduct(_update(change, "name"), timeout=WAIT))
    assert isinstance(error, e.NotFound)


async def test_update_to_a_taken_sku_is_already_exists(stub: ProductServiceAsyncStub) -> None:
    await create(stub, sku="TAKEN")
    product = await create(stub, sku="MINE")
    change = product_pb2.Product(id=product.id, sku="TAKEN")
    error = await failure(stub.UpdateProduct(_update(change, "sku"), timeout=WAIT))
    assert isinstance(error, e.AlreadyExists)


async def test_update_retried_with_the_same_request_id_is_applied_once(
    stub: ProductServiceAsyncStub, store: ProductStore
) -> None:
    product = await create(stub)
    request = _update(product_pb2.Product(id=product.id, name="Once"), "name", request_id="u-1")
    first, second = [await stub.UpdateProduct(request, timeout=WAIT) for _ in range(2)]
    assert first == second and await _count(store, "events") == 2


# --- DeleteProduct ------------------------------------------------------------------


async def test_delete_removes_the_product(stub: ProductServiceAsyncStub) -> None:
    product = await create(stub)
    deleted = await stub.DeleteProduct(pb.DeleteProductRequest(id=product.id, etag=product.etag))
    assert deleted.revision == 2
    error = await failure(stub.GetProduct(pb.GetProductRequest(id=product.id), timeout=WAIT))
    assert isinstance(error, e.NotFound)


async def test_delete_unknown_is_not_found(stub: ProductServiceAsyncStub) -> None:
    error = await failure(stub.DeleteProduct(pb.DeleteProductRequest(id="nothing"), timeout=WAIT))
    assert isinstance(error, e.NotFound)


async def test_delete_with_a_stale_etag_is_aborted(stub: ProductServiceAsyncStub) -> None:
    product = await create(stub)
    request = pb.DeleteProductRequest(id=product.id, etag="ffffffffffffffff")
    assert isinstance(await failure(stub.DeleteProduct(request, timeout=WAIT)), e.Aborted)


async def test_delete_with_active_reservations_is_refused_until_released(
    stub: ProductServiceAsyncStub, store: ProductStore
) -> None:
    product = await create(stub)
    reserved = await reserve(stub, product.id, 2, "r-1")
    error = await failure(stub.DeleteProduct(pb.DeleteProductRequest(id=product.id)))
    assert isinstance(error, e.FailedPrecondition) and error.reason == "ACTIVE_RESERVATIONS"
    assert error.metadata["active_reservations"] == "1"
    await stub.ReleaseStock(pb.ReleaseStockRequest(reservation_id=reserved.reservation.id))
    await stub.DeleteProduct(pb.DeleteProductRequest(id=product.id), timeout=WAIT)
    assert await _count(store, "reservations") == 0  # released reservations go with the product


async def test_delete_retried_with_the_same_request_id_succeeds_again(
    stub: ProductServiceAsyncStub,
) -> None:
    product = await create(stub)
    request = pb.DeleteProductRequest(id=product.id, request_id="d-1")
    first, second = [await stub.DeleteProduct(request, timeout=WAIT) for _ in range(2)]
    assert first == second


# --- ReserveStock / ReleaseStock ----------------------------------------------------


async def test_reserve_takes_units_out_of_stock(stub: ProductServiceAsyncStub) -> None:
    product = await create(stub, stock=5)
    reply = await reserve(stub, product.id, 3, "r-1")
    assert reply.product.stock == 2 and reply.product.etag != product.etag
    reservation = reply.reservation
    assert (reservation.product_id, reservation.quantity) == (product.id, 3)
    assert reservation.state == product_pb2.RESERVATION_STATE_ACTIVE and reservation.id


@pytest.mark.parametrize(
    ("quantity", "request_id", "fields"),
    [(0, "r", ["quantity"]), (-3, "r", ["quantity"]), (1, "", ["request_id"]),
     (0, "", ["quantity", "request_id"]), (1, "x" * 65, ["request_id"])],
)  # fmt: skip
async def test_reserve_rejects_bad_requests(
    stub: ProductServiceAsyncStub, quantity: int, request_id: str, fields: list[str]
) -> None:
    product = await create(stub)
    error = await failure(reserve(stub, product.id, quantity, request_id))
    assert isinstance(error, e.InvalidArgument)
    assert [v.field for v in error.violations] == fields


async def test_reserve_unknown_product_is_not_found(stub: ProductServiceAsyncStub) -> None:
    error = await failure(reserve(stub, "nothing", 1, "r-1"))
    assert isinstance(error, e.NotFound) and error.reason == "PRODUCT_NOT_FOUND"


async def test_reserve_more_than_in_stock_is_insufficient_stock(
    stub: ProductServiceAsyncStub, store: ProductStore
) -> None:
    product = await create(stub, stock=2)
    error = await failure(reserve(stub, product.id, 3, "r-1"))
    assert isinstance(error, e.FailedPrecondition) and error.reason == "INSUFFICIENT_STOCK"
    assert (error.metadata["available"], error.metadata["requested"]) == ("2", "3")
    huge = await failure(reserve(stub, product.id, 2**63 - 1, "r-2"))
    assert isinstance(huge, e.FailedPrecondition)
    assert (await stub.GetProduct(pb.GetProductRequest(id=product.id))).product.stock == 2
    assert (await _count(store, "reservations"), await _count(store, "events")) == (0, 1)


async def test_reserve_retried_with_the_same_request_id_reserves_once(
    stub: ProductServiceAsyncStub, store: ProductStore
) -> None:
    product = await create(stub, stock=5)
    first, second = [await reserve(stub, product.id, 2, "same") for _ in range(2)]
    assert first == second and first.product.stock == 3
    assert (await stub.GetProduct(pb.GetProductRequest(id=product.id))).product.stock == 3
    assert (await _count(store, "reservations"), await _count(store, "events")) == (1, 2)
    other = await failure(reserve(stub, product.id, 1, "same"))  # same key, other quantity
    assert isinstance(other, e.InvalidArgument)


async def test_fifty_concurrent_reservations_on_ten_units(
    stub: ProductServiceAsyncStub, store: ProductStore
) -> None:
    product = await create(stub, stock=10)
    calls = [reserve(stub, product.id, 1, f"r-{i}") for i in range(50)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    won = [r for r in results if isinstance(r, pb.ReserveStockResponse)]
    lost = [from_rpc_error(r) for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 10 and len(lost) == 40
    assert all(isinstance(x, e.FailedPrecondition) for x in lost)
    assert {x.reason for x in lost} == {"INSUFFICIENT_STOCK"}
    assert sorted(r.product.stock for r in won) == list(range(10))  # each unit counted once
    assert (await stub.GetProduct(pb.GetProductRequest(id=product.id))).product.stock == 0
    assert await _count(store, "reservations") == 10


async def test_release_puts_units_back_once(
    stub: ProductServiceAsyncStub, store: ProductStore
) -> None:
    product = await create(stub, stock=5)
    reservation = (await reserve(stub, product.id, 4, "r-1")).reservation
    request = pb.ReleaseStockRequest(reservation_id=reservation.id)
    released = await stub.ReleaseStock(request, timeout=WAIT)
    assert released.product.stock == 5
    assert released.reservation.state == product_pb2.RESERVATION_STATE_RELEASED
    again = await stub.ReleaseStock(request, timeout=WAIT)  # no change, still a success
    assert again.product == released.product and again.reservation == released.reservation
    assert await _count(store, "events") == 3


async def test_release_retried_with_the_same_request_id_returns_the_first_result(
    stub: ProductServiceAsyncStub,
) -> None:
    product = await create(stub, stock=5)
    reservation = (await reserve(stub, product.id, 1, "r-1")).reservation
    request = pb.ReleaseStockRequest(reservation_id=reservation.id, request_id="rel-1")
    first, second = [await stub.ReleaseStock(request, timeout=WAIT) for _ in range(2)]
    assert first == second


async def test_release_unknown_reservation_is_not_found(stub: ProductServiceAsyncStub) -> None:
    request = pb.ReleaseStockRequest(reservation_id="nothing")
    error = await failure(stub.ReleaseStock(request, timeout=WAIT))
    assert isinstance(error, e.NotFound) and error.reason == "RESERVATION_NOT_FOUND"
    missing = await failure(stub.ReleaseStock(pb.ReleaseStockRequest(), timeout=WAIT))
    assert isinstance(missing, e.InvalidArgument)


# --- WatchProducts ------------------------------------------------------------------


async def test_watch_streams_stock_events_with_the_reservation(
    stub: ProductServiceAsyncStub,
) -> None:
    product = await create(stub, stock=3)
    watch = stub.WatchProducts(pb.WatchProductsRequest(start_revision=0))
    created = (await read_event(watch)).event
    assert (created.revision, created.type) == (1, ET.PRODUCT_EVENT_TYPE_CREATED)
    assert not created.HasField("reservation")
    reply = await reserve(stub, product.id, 2, "r-1")
    reserved = (await read_event(watch)).event
    assert reserved.type == ET.PRODUCT_EVENT_TYPE_STOCK_RESERVED
    assert (reserved.reservation, reserved.product) == (reply.reservation, reply.product)
    await stub.ReleaseStock(pb.ReleaseStockRequest(reservation_id=reply.reservation.id))
    released = (await read_event(watch)).event
    assert released.type == ET.PRODUCT_EVENT_TYPE_STOCK_RELEASED
    assert released.product.stock == 3 and released.revision == 3
    watch.cancel()


async def test_watch_resumes_after_a_revision(stub: ProductServiceAsyncStub) -> None:
    for i in range(3):
        await create(stub, sku=f"W{i}")
    watch = stub.WatchProducts(pb.WatchProductsRequest(start_revision=2))
    resumed = (await read_event(watch)).event
    assert resumed.revision == 3 and resumed.product.sku == "W2"
    watch.cancel()


async def test_watch_negative_start_revision_is_invalid(stub: ProductServiceAsyncStub) -> None:
    watch = stub.WatchProducts(pb.WatchProductsRequest(start_revision=-1))
    error = await failure(watch.read())
    assert isinstance(error, e.InvalidArgument)
