"""Products of a deleted seller: the user event applied once, its effects, and the API after.

The user event goes through :func:`services.runtime.events.apply_event` (the
subscriber's transaction) on each backend; the end-to-end path with real
processes is in ``tests/events``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc.aio
from google.protobuf.field_mask_pb2 import FieldMask

from services.product import SELLERS, ProductStore
from services.runtime import errors as e
from services.runtime.events import apply_event
from services.runtime.storage import read_checkpoint
from switchboard.product.v1 import product_pb2, product_service_pb2_grpc
from switchboard.product.v1 import product_service_pb2 as pb
from switchboard.user.v1 import user_pb2
from tests._support import failure
from tests.product._support import SELLER, WAIT, create, read_event, reserve
from tests.storage._backends import count

if TYPE_CHECKING:
    from switchboard.product.v1.product_service_pb2_grpc import ProductServiceAsyncStub

_DELISTED = product_pb2.PRODUCT_STATE_DELISTED
_ACTIVE = product_pb2.PRODUCT_STATE_ACTIVE


def _deleted(revision: int, user_id: str = SELLER) -> user_pb2.UserEvent:
    return user_pb2.UserEvent(
        revision=revision, type=user_pb2.USER_EVENT_TYPE_DELETED, user=user_pb2.User(id=user_id)
    )


async def _apply(store: ProductStore, event: user_pb2.UserEvent) -> bool:
    return await store.db.write(lambda tx: apply_event(tx, SELLERS, event))


async def _get(stub: ProductServiceAsyncStub, product_id: str) -> product_pb2.Product:
    return (await stub.GetProduct(pb.GetProductRequest(id=product_id), timeout=WAIT)).product


async def test_a_deleted_seller_delists_products_and_releases_reservations_once(
    store: ProductStore, stub: ProductServiceAsyncStub, address: str
) -> None:
    products = [await create(stub, sku=f"SKU-{i}", stock=5) for i in range(3)]
    assert {p.state for p in products} == {_ACTIVE}
    await reserve(stub, products[0].id, 2, "r-0")
    await reserve(stub, products[1].id, 3, "r-1")
    head = await count(store, "events")
    async with grpc.aio.insecure_channel(address) as channel:
        watch = product_service_pb2_grpc.ProductServiceStub(channel).WatchProducts(
            pb.WatchProductsRequest(start_revision=head)
        )
        assert await _apply(store, _deleted(7))
        seen = [(await read_event(watch)).event for _ in range(5)]
        watch.cancel()
    kinds = [product_pb2.ProductEventType.Name(event.type) for event in seen]
    assert kinds == ["PRODUCT_EVENT_TYPE_STOCK_RELEASED", "PRODUCT_EVENT_TYPE_DELISTED",
                     "PRODUCT_EVENT_TYPE_STOCK_RELEASED", "PRODUCT_EVENT_TYPE_DELISTED",
                     "PRODUCT_EVENT_TYPE_DELISTED"]  # fmt: skip
    assert [event.revision for event in seen] == list(range(head + 1, head + 6))  # gap-free
    for product in products:
        after = await _get(stub, product.id)
        assert (after.state, after.stock) == (_DELISTED, 5)  # stock restored
    # Delivered again (a reconnect, another instance): nothing more happens.
    assert not await _apply(store, _deleted(7))
    assert not await _apply(store, _deleted(6))
    assert await count(store, "events") == head + 5
    assert await store.db.read(lambda conn: read_checkpoint(conn, SELLERS.name)) == 7


async def test_other_user_events_and_other_sellers_change_no_product(
    store: ProductStore, stub: ProductServiceAsyncStub
) -> None:
    product = await create(stub)
    updated = user_pb2.UserEvent(
        revision=1, type=user_pb2.USER_EVENT_TYPE_UPDATED, user=user_pb2.User(id=SELLER)
    )
    assert await _apply(store, updated)
    assert await _apply(store, _deleted(2, user_id="someone-else"))
    assert (await _get(stub, product.id)).state == _ACTIVE
    assert await store.db.read(lambda conn: read_checkpoint(conn, SELLERS.name)) == 2


async def test_a_delisted_product_refuses_reservations_and_lists_by_state(
    store: ProductStore, stub: ProductServiceAsyncStub
) -> None:
    gone = await create(stub, sku="GONE-1")
    await _apply(store, _deleted(1))
    # A product created later for that id (the seller check passed earlier) stays on sale.
    kept = await create(stub, sku="KEPT-1")
    error = await failure(reserve(stub, gone.id, 1, "late"))
    assert isinstance(error, e.FailedPrecondition) and error.reason == "PRODUCT_DELISTED"
    assert error.metadata["product_id"] == gone.id
    assert (await _get(stub, gone.id)).stock == 10  # nothing taken

    async def listed(state: int) -> list[str]:
        request = pb.ListProductsRequest(state=state, seller_id=SELLER)  # type: ignore[arg-type]
        return [p.id for p in (await stub.ListProducts(request, timeout=WAIT)).products]

    assert await listed(_DELISTED) == [gone.id]
    assert await listed(_ACTIVE) == [kept.id]
    assert sorted(await listed(product_pb2.PRODUCT_STATE_UNSPECIFIED)) == sorted([gone.id, kept.id])
    bad = await failure(stub.ListProducts(pb.ListProductsRequest(state=9), timeout=WAIT))  # type: ignore[arg-type]
    assert isinstance(bad, e.InvalidArgument)


async def test_state_is_output_only(stub: ProductServiceAsyncStub) -> None:
    product = await create(stub)
    request = pb.UpdateProductRequest(
        product=product_pb2.Product(id=product.id, state=_DELISTED),
        update_mask=FieldMask(paths=["state"]),
    )
    error = await failure(stub.UpdateProduct(request, timeout=WAIT))
    assert isinstance(error, e.InvalidArgument)
    sent = product_pb2.Product()
    sent.CopyFrom(product)
    sent.ClearField("id")
    sent.sku, sent.state = "OTHER-1", _DELISTED
    created = await stub.CreateProduct(pb.CreateProductRequest(product=sent), timeout=WAIT)
    assert created.product.state == _ACTIVE  # ignored on input: a new product is on sale
