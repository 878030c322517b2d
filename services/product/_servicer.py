"""The ProductService servicer: validate, check the seller, call the store, raise typed errors.

Example::

    servicer = ProductServicer(store, sellers, PageTokens(secret))
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeAlias

from google.rpc import error_details_pb2  # type: ignore[import-untyped, unused-ignore]

from services.product._sellers import SellerDirectory
from services.product._store import ProductStore
from services.product._validate import ALL_PATHS, READ_ONLY_PATHS, check_product
from services.runtime.errors import FailedPrecondition, InvalidArgument
from services.runtime.paging import PageTokens, page_size
from services.runtime.storage import (
    MAX_ID_LENGTH,
    RequestKey,
    Violations,
    check_chosen_id,
    check_id,
    check_request_id,
    check_update_mask,
    require_id,
    watch_stream,
)
from switchboard.product.v1 import product_service_pb2 as pb
from switchboard.product.v1 import product_service_pb2_grpc

if TYPE_CHECKING:
    import grpc.aio

    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

__all__ = ["SERVICE_NAME", "ProductServicer"]

SERVICE_NAME = "switchboard.product.v1.ProductService"
_PAGE_QUERY = "products"


class ProductServicer(product_service_pb2_grpc.ProductServiceServicer):
    """Serves ``switchboard.product.v1.ProductService`` from a :class:`ProductStore`."""

    def __init__(self, store: ProductStore, sellers: SellerDirectory, tokens: PageTokens) -> None:
        self._store = store
        self._sellers = sellers
        self._tokens = tokens

    async def CreateProduct(
        self, request: pb.CreateProductRequest, context: Context
    ) -> pb.CreateProductResponse:
        violations = Violations()
        check_product(violations, request.product, ALL_PATHS)
        check_request_id(violations, "request_id", request.request_id, required=False)
        check_chosen_id(violations, "product_id", request.product_id)
        violations.raise_if_any("invalid CreateProduct request")
        key = RequestKey.of("CreateProduct", request.request_id, request)
        stored = await self._store.stored_response(key)
        if stored is not None:  # a retry: the first answer, even if the user service is down
            return pb.CreateProductResponse.FromString(stored)
        await self._check_seller(request.product.seller_id)
        return await self._store.create_product(request.product, key, request.product_id)

    async def GetProduct(
        self, request: pb.GetProductRequest, context: Context
    ) -> pb.GetProductResponse:
        require_id("id", request.id, "GetProduct")
        return pb.GetProductResponse(product=await self._store.get_product(request.id))

    async def ListProducts(
        self, request: pb.ListProductsRequest, context: Context
    ) -> pb.ListProductsResponse:
        size = page_size(request.page_size)
        if len(request.seller_id) > MAX_ID_LENGTH:
            raise InvalidArgument(
                "invalid ListProducts request",
                violations=[("seller_id", f"must be at most {MAX_ID_LENGTH} characters")],
            )
        query = (_PAGE_QUERY, request.seller_id)
        after = self._tokens.verify(request.page_token, *query)
        page = await self._store.list_products(request.seller_id, after, size)
        token = self._tokens.issue(page.products[-1].id, *query) if page.more else ""
        return pb.ListProductsResponse(products=page.products, next_page_token=token)

    async def UpdateProduct(
        self, request: pb.UpdateProductRequest, context: Context
    ) -> pb.UpdateProductResponse:
        violations = Violations()
        check_id(violations, "product.id", request.product.id)
        paths = check_update_mask(violations, request.update_mask, ALL_PATHS, READ_ONLY_PATHS)
        check_product(violations, request.product, paths)
        check_request_id(violations, "request_id", request.request_id, required=False)
        violations.raise_if_any("invalid UpdateProduct request")
        key = RequestKey.of("UpdateProduct", request.request_id, request)
        stored = await self._store.stored_response(key)
        if stored is not None:
            return pb.UpdateProductResponse.FromString(stored)
        if "seller_id" in paths:
            current = await self._store.get_product(request.product.id)
            if current.seller_id != request.product.seller_id:
                await self._check_seller(request.product.seller_id)
        return await self._store.update_product(request.product, paths, key)

    async def DeleteProduct(
        self, request: pb.DeleteProductRequest, context: Context
    ) -> pb.DeleteProductResponse:
        violations = Violations()
        check_id(violations, "id", request.id)
        check_request_id(violations, "request_id", request.request_id, required=False)
        violations.raise_if_any("invalid DeleteProduct request")
        key = RequestKey.of("DeleteProduct", request.request_id, request)
        return await self._store.delete_product(request.id, request.etag, key)

    async def ReserveStock(
        self, request: pb.ReserveStockRequest, context: Context
    ) -> pb.ReserveStockResponse:
        violations = Violations()
        check_id(violations, "product_id", request.product_id)
        if request.quantity < 1:
            violations.add("quantity", "must be at least 1")
        check_request_id(violations, "request_id", request.request_id, required=True)
        violations.raise_if_any("invalid ReserveStock request")
        key = RequestKey.of("ReserveStock", request.request_id, request)
        return await self._store.reserve_stock(request.product_id, request.quantity, key)

    async def ReleaseStock(
        self, request: pb.ReleaseStockRequest, context: Context
    ) -> pb.ReleaseStockResponse:
        violations = Violations()
        check_id(violations, "reservation_id", request.reservation_id)
        check_request_id(violations, "request_id", request.request_id, required=False)
        violations.raise_if_any("invalid ReleaseStock request")
        key = RequestKey.of("ReleaseStock", request.request_id, request)
        return await self._store.release_stock(request.reservation_id, key)

    async def WatchProducts(
        self, request: pb.WatchProductsRequest, context: Context
    ) -> AsyncIterator[pb.WatchProductsResponse]:
        # Ends with UNAVAILABLE when the server stops: the log itself has no end.
        async for event in watch_stream(request.start_revision, self._store.watch_products):
            yield pb.WatchProductsResponse(event=event)

    async def _check_seller(self, seller_id: str) -> None:
        """FAILED_PRECONDITION (SELLER_NOT_FOUND) unless the user service knows the seller."""
        if await self._sellers.exists(seller_id):
            return
        violation = error_details_pb2.PreconditionFailure.Violation(
            type="SELLER_NOT_FOUND",
            subject=f"users/{seller_id}",
            description="the seller must be an existing user",
        )
        raise FailedPrecondition(
            f"seller {seller_id!r} is not an existing user",
            reason="SELLER_NOT_FOUND",
            metadata={"seller_id": seller_id},
            details=[error_details_pb2.PreconditionFailure(violations=[violation])],
        )
