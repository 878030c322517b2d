"""What the product servicer needs from storage: a small async interface.

:class:`services.product.SqliteProductStore` is the embedded implementation;
a PostgreSQL one would implement the same methods (the stock change as
``UPDATE ... SET stock = stock - $1 WHERE id = $2 AND stock >= $1`` in the
same transaction as the reservation row, its event and its stored response).

Contract for every implementation:

- Each mutation writes the change, its :class:`ProductEvent` (next revision)
  and, when ``key`` is given, the response for that key in ONE transaction;
  a key seen before returns the stored response and changes nothing.
- Stock never goes negative, whatever the concurrency (also across
  processes sharing the database), and a reservation is counted once.
- Errors are :mod:`services.runtime.errors` types: NotFound, AlreadyExists
  (SKU or chosen id taken), Aborted (stale etag), FailedPrecondition (INSUFFICIENT_STOCK,
  ACTIVE_RESERVATIONS), InvalidArgument (request_id reused).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NamedTuple, Protocol

from services.runtime.storage import RequestKey
from switchboard.product.v1 import product_pb2
from switchboard.product.v1 import product_service_pb2 as pb

__all__ = ["ProductPage", "ProductStore"]


class ProductPage(NamedTuple):
    """One page of products in id order, and whether more follow."""

    products: list[product_pb2.Product]
    more: bool


class ProductStore(Protocol):
    """Durable products, reservations and their change log.

    Example::

        reply = await store.reserve_stock(product_id, 2, RequestKey.of("ReserveStock", rid, req))
    """

    async def stored_response(self, key: RequestKey | None) -> bytes | None:
        """The response already stored for ``key`` (a retry), without a write transaction."""
        ...

    async def create_product(
        self, product: product_pb2.Product, key: RequestKey | None, product_id: str = ""
    ) -> pb.CreateProductResponse:
        """Create a product from the (validated) fields of ``product``, with id
        ``product_id`` (AlreadyExists if taken) or a fresh one when empty."""
        ...

    async def get_product(self, product_id: str) -> product_pb2.Product:
        """The product with this id (NotFound if none)."""
        ...

    async def list_products(self, seller_id: str, after_id: str | None, limit: int) -> ProductPage:
        """Up to ``limit`` products after ``after_id`` in id order; of one seller if set."""
        ...

    async def update_product(
        self, product: product_pb2.Product, paths: frozenset[str], key: RequestKey | None
    ) -> pb.UpdateProductResponse:
        """Copy the ``paths`` fields of ``product`` onto the stored one (etag checked if set)."""
        ...

    async def delete_product(
        self, product_id: str, etag: str, key: RequestKey | None
    ) -> pb.DeleteProductResponse:
        """Delete a product without active reservations (etag checked if non-empty)."""
        ...

    async def reserve_stock(
        self, product_id: str, quantity: int, key: RequestKey | None
    ) -> pb.ReserveStockResponse:
        """Take ``quantity`` units out of stock into a new active reservation."""
        ...

    async def release_stock(
        self, reservation_id: str, key: RequestKey | None
    ) -> pb.ReleaseStockResponse:
        """Put an active reservation's units back (a released one: no change, success)."""
        ...

    def watch_products(self, start_revision: int) -> AsyncIterator[product_pb2.ProductEvent]:
        """The events after ``start_revision``, then each new one; ends when watches end."""
        ...

    def end_watches(self) -> None:
        """End every open watch stream (server shutdown)."""
        ...

    def close(self) -> None:
        """Release the storage."""
        ...
