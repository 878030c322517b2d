"""Helpers the product tests share (the conftest's fixtures build on them)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from services.runtime import SwitchboardError
from switchboard.product.v1 import product_pb2, product_service_pb2

__all__ = ["SELLER", "WAIT", "create", "FakeSellers", "new_product", "read_event", "reserve"]


if TYPE_CHECKING:
    from switchboard.product.v1.product_service_pb2_grpc import ProductServiceAsyncStub


WAIT = 5.0
"""Bound on every single call or wait in these tests (seconds)."""


SELLER = "0190aaaaaaaaaaaaaaaaaaaaaaaaaaaa"


class FakeSellers:
    """A :class:`SellerDirectory` with a fixed set of users, or a fixed failure."""

    def __init__(self) -> None:
        self.known = {SELLER}
        self.failure: SwitchboardError | None = None
        self.calls: list[str] = []

    async def exists(self, seller_id: str) -> bool:
        self.calls.append(seller_id)
        if self.failure is not None:
            raise self.failure
        return seller_id in self.known


def new_product(
    sku: str = "LAMP-1", stock: int = 10, seller_id: str = SELLER
) -> product_pb2.Product:
    return product_pb2.Product(
        sku=sku,
        name="Desk lamp",
        description="A lamp for a desk.",
        price=product_pb2.Money(currency_code="EUR", amount_minor=1999),
        stock=stock,
        seller_id=seller_id,
    )


async def create(
    stub: ProductServiceAsyncStub, sku: str = "LAMP-1", stock: int = 10, request_id: str = ""
) -> product_pb2.Product:
    request = product_service_pb2.CreateProductRequest(
        product=new_product(sku, stock), request_id=request_id
    )
    return (await stub.CreateProduct(request, timeout=WAIT)).product


async def reserve(
    stub: ProductServiceAsyncStub, product_id: str, quantity: int, request_id: str
) -> product_service_pb2.ReserveStockResponse:
    request = product_service_pb2.ReserveStockRequest(
        product_id=product_id, quantity=quantity, request_id=request_id
    )
    return await stub.ReserveStock(request, timeout=WAIT)


async def read_event(watch: Any) -> product_service_pb2.WatchProductsResponse:
    """The next message of a WatchProducts stream (bounded wait)."""
    response = await asyncio.wait_for(watch.read(), WAIT)
    assert isinstance(response, product_service_pb2.WatchProductsResponse), response
    return response
