"""The product service's typed client, for Python callers (tests, scripts, other programs).

Example::

    async with Client.from_env() as client:
        products = await ProductClient.connect(client)
        lamp = await products.create_product(sku="A-1", name="Lamp", price=price,
                                             seller_id=user.id, stock=5)
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from services.runtime import MethodSpec, TypedClient, update_mask
from switchboard.product.v1 import product_pb2, product_service_pb2

__all__ = [
    "CREATE_PRODUCT",
    "DELETE_PRODUCT",
    "GET_PRODUCT",
    "LIST_PRODUCTS",
    "RELEASE_STOCK",
    "RESERVE_STOCK",
    "UPDATE_PRODUCT",
    "WATCH_PRODUCTS",
    "ProductClient",
]

_P = product_service_pb2
_PRODUCT = "/switchboard.product.v1.ProductService/"

CREATE_PRODUCT: MethodSpec[_P.CreateProductRequest, _P.CreateProductResponse] = MethodSpec.of(
    _PRODUCT + "CreateProduct"
)
GET_PRODUCT: MethodSpec[_P.GetProductRequest, _P.GetProductResponse] = MethodSpec.of(
    _PRODUCT + "GetProduct"
)
LIST_PRODUCTS: MethodSpec[_P.ListProductsRequest, _P.ListProductsResponse] = MethodSpec.of(
    _PRODUCT + "ListProducts"
)
UPDATE_PRODUCT: MethodSpec[_P.UpdateProductRequest, _P.UpdateProductResponse] = MethodSpec.of(
    _PRODUCT + "UpdateProduct"
)
DELETE_PRODUCT: MethodSpec[_P.DeleteProductRequest, _P.DeleteProductResponse] = MethodSpec.of(
    _PRODUCT + "DeleteProduct"
)
RESERVE_STOCK: MethodSpec[_P.ReserveStockRequest, _P.ReserveStockResponse] = MethodSpec.of(
    _PRODUCT + "ReserveStock"
)
RELEASE_STOCK: MethodSpec[_P.ReleaseStockRequest, _P.ReleaseStockResponse] = MethodSpec.of(
    _PRODUCT + "ReleaseStock"
)
WATCH_PRODUCTS: MethodSpec[_P.WatchProductsRequest, _P.WatchProductsResponse] = MethodSpec.of(
    _PRODUCT + "WatchProducts"
)


class ProductClient(TypedClient):
    """Typed calls to ``switchboard.product.v1.ProductService`` (registry name ``product``)."""

    SERVICE = "product"

    async def create_product(
        self,
        *,
        sku: str,
        name: str,
        price: product_pb2.Money,
        seller_id: str,
        stock: int = 0,
        description: str = "",
        product_id: str = "",
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> product_pb2.Product:
        """Create a product. ``product_id`` chooses the id (1-63 of ``a-z0-9-``;
        :class:`errors.AlreadyExists` if taken); empty lets the server choose.
        Example: ``await products.create_product(sku="A-1", name="Lamp",
        price=Money(currency_code="EUR", amount_minor=1999), seller_id=user.id, stock=5)``."""
        product = product_pb2.Product(
            sku=sku,
            name=name,
            description=description,
            price=price,
            stock=stock,
            seller_id=seller_id,
        )
        request = _P.CreateProductRequest(
            product=product, product_id=product_id, request_id=request_id or ""
        )
        return (await self.conn.call(CREATE_PRODUCT, request, timeout_s=timeout_s)).product

    async def get_product(
        self, product_id: str, *, timeout_s: float | None = None
    ) -> product_pb2.Product:
        """The product with this id; :class:`errors.NotFound` if there is none."""
        request = _P.GetProductRequest(id=product_id)
        return (await self.conn.call(GET_PRODUCT, request, timeout_s=timeout_s)).product

    async def list_products(
        self,
        page_size: int = 0,
        page_token: str = "",
        *,
        seller_id: str = "",
        timeout_s: float | None = None,
    ) -> _P.ListProductsResponse:
        """One page of products (``.products``, ``.next_page_token``), optionally of one seller."""
        request = _P.ListProductsRequest(
            page_size=page_size, page_token=page_token, seller_id=seller_id
        )
        return await self.conn.call(LIST_PRODUCTS, request, timeout_s=timeout_s)

    async def update_product(
        self,
        product_id: str,
        *,
        sku: str | None = None,
        name: str | None = None,
        description: str | None = None,
        price: product_pb2.Money | None = None,
        stock: int | None = None,
        seller_id: str | None = None,
        etag: str = "",
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> product_pb2.Product:
        """Change the fields given (not None); ``etag`` makes it conditional."""
        mask, fields = update_mask(
            sku=sku,
            name=name,
            description=description,
            price=price,
            stock=stock,
            seller_id=seller_id,
        )
        product = product_pb2.Product(id=product_id, etag=etag, **fields)
        request = _P.UpdateProductRequest(
            product=product, update_mask=mask, request_id=request_id or ""
        )
        return (await self.conn.call(UPDATE_PRODUCT, request, timeout_s=timeout_s)).product

    async def delete_product(
        self,
        product_id: str,
        *,
        etag: str = "",
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> int:
        """Delete a product; returns the revision of the deletion."""
        request = _P.DeleteProductRequest(id=product_id, etag=etag, request_id=request_id or "")
        return (await self.conn.call(DELETE_PRODUCT, request, timeout_s=timeout_s)).revision

    async def reserve_stock(
        self,
        product_id: str,
        quantity: int,
        *,
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> _P.ReserveStockResponse:
        """Reserve units (``.reservation``, ``.product``); a retry reserves nothing more."""
        request = _P.ReserveStockRequest(
            product_id=product_id, quantity=quantity, request_id=request_id or ""
        )
        return await self.conn.call(RESERVE_STOCK, request, timeout_s=timeout_s)

    async def release_stock(
        self,
        reservation_id: str,
        *,
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> _P.ReleaseStockResponse:
        """Put a reservation's units back (releasing twice is fine)."""
        request = _P.ReleaseStockRequest(reservation_id=reservation_id, request_id=request_id or "")
        return await self.conn.call(RELEASE_STOCK, request, timeout_s=timeout_s)

    async def watch_products(
        self, start_revision: int = 0, *, timeout_s: float | None = None
    ) -> AsyncIterator[product_pb2.ProductEvent]:
        """The change log after ``start_revision``, then live changes (resume on error)."""
        request = _P.WatchProductsRequest(start_revision=start_revision)
        async for message in self.conn.stream(WATCH_PRODUCTS, request, timeout_s=timeout_s):
            yield message.event
