"""The ProductService servicer: validate, check the seller, call the store, raise typed errors.

Example::

    servicer = ProductServicer(store, sellers, PageTokens(secret))
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from google.rpc import error_details_pb2  # type: ignore[import-untyped, unused-ignore]

from services.product._sellers import SellerDirectory
from services.product._store import ProductStore
from services.product._validate import ALL_PATHS, READ_ONLY_PATHS, check_product
from services.runtime.errors import FailedPrecondition
from services.runtime.paging import PageTokens
from services.runtime.storage import Context, list_page, request_key, update_paths
from services.runtime.validation import Violations, check_id, require_id
from switchboard.product.v1 import product_pb2, product_service_pb2_grpc
from switchboard.product.v1 import product_service_pb2 as pb

__all__ = ["SERVICE_NAME", "ProductServicer"]

SERVICE_NAME = "switchboard.product.v1.ProductService"


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
        key = request_key(violations, "CreateProduct", request, chosen_id="product_id")
        stored = await self._store.stored_response(key)
        if stored is not None:  # a retry: the first answer, even if the user service is down
            return pb.CreateProductResponse.FromString(stored)
        await self._check_seller(request.product.seller_id)
        product, product_id = request.product, request.product_id
        product.ClearField("state")  # output only: a new product is ACTIVE
        return await self._store.create(product, product_id, key, pb.CreateProductResponse)

    async def GetProduct(
        self, request: pb.GetProductRequest, context: Context
    ) -> pb.GetProductResponse:
        require_id("id", request.id, "GetProduct")
        return pb.GetProductResponse(product=await self._store.get(request.id))

    async def ListProducts(
        self, request: pb.ListProductsRequest, context: Context
    ) -> pb.ListProductsResponse:
        violations = Violations()
        if request.seller_id:
            check_id(violations, "seller_id", request.seller_id)
        if request.state not in product_pb2.ProductState.values():
            violations.add("state", f"unknown product state {request.state}")
        violations.raise_if_any("invalid ListProducts request")
        seller, state = request.seller_id, request.state
        products, token = await list_page(
            self._tokens,
            request,
            ("products", seller, *((str(state),) if state else ())),  # old tokens still good
            lambda after, size: self._store.list_by_seller(seller, after, size, state),
        )
        return pb.ListProductsResponse(products=products, next_page_token=token)

    async def UpdateProduct(
        self, request: pb.UpdateProductRequest, context: Context
    ) -> pb.UpdateProductResponse:
        violations = Violations()
        paths = update_paths(violations, request, "product", ALL_PATHS, READ_ONLY_PATHS)
        check_product(violations, request.product, paths)
        key = request_key(violations, "UpdateProduct", request)
        stored = await self._store.stored_response(key)
        if stored is not None:
            return pb.UpdateProductResponse.FromString(stored)
        if "seller_id" in paths:
            current = await self._store.get(request.product.id)
            if current.seller_id != request.product.seller_id:
                await self._check_seller(request.product.seller_id)
        return await self._store.update(request.product, paths, key, pb.UpdateProductResponse)

    async def DeleteProduct(
        self, request: pb.DeleteProductRequest, context: Context
    ) -> pb.DeleteProductResponse:
        violations = Violations()
        check_id(violations, "id", request.id)
        key = request_key(violations, "DeleteProduct", request)
        return await self._store.delete_product(request.id, request.etag, key)

    async def ReserveStock(
        self, request: pb.ReserveStockRequest, context: Context
    ) -> pb.ReserveStockResponse:
        violations = Violations()
        check_id(violations, "product_id", request.product_id)
        if request.quantity < 1:
            violations.add("quantity", "must be at least 1")
        key = request_key(violations, "ReserveStock", request, required=True)
        return await self._store.reserve_stock(request.product_id, request.quantity, key)

    async def ReleaseStock(
        self, request: pb.ReleaseStockRequest, context: Context
    ) -> pb.ReleaseStockResponse:
        violations = Violations()
        check_id(violations, "reservation_id", request.reservation_id)
        key = request_key(violations, "ReleaseStock", request)
        return await self._store.release_stock(request.reservation_id, key)

    async def WatchProducts(
        self, request: pb.WatchProductsRequest, context: Context
    ) -> AsyncIterator[pb.WatchProductsResponse]:
        # Ends with UNAVAILABLE when the server stops: the log itself has no end.
        async for event in self._store.watch_stream(request.start_revision):
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
