"""The product service: products with a unique SKU, a price, stock and a seller.

Run it with ``python -m services.product`` (see ``--help``). Pieces:

- :class:`ProductServicer` — validates, checks the seller through a
  :class:`SellerDirectory`, calls the :class:`ProductStore`.
- :class:`ProductStore` — products and reservations on the shared
  resource-store skeleton (``<data dir>/product.db``, or PostgreSQL);
  ReserveStock / ReleaseStock are atomic and idempotent.
- :class:`ProjectedSellers` — the seller check: the local projection of existing
  users first, :class:`UserServiceSellers` (``GetUser`` over gRPC) on a miss.
- :func:`product_service` — the ``Service`` binding for ``create_server``/``serve``.
- :func:`replay` — rebuilds products and reservations from the change log.

Example::

    store = ProductStore.open(Path("var"))
    service = product_service(store, sellers, store.db.secret(PAGE_TOKEN_SECRET))
    server, port = create_server([service], ServerConfig(listen="127.0.0.1:0"))
"""

from __future__ import annotations

from services.product._app import PAGE_TOKEN_SECRET, product_service, run
from services.product._currencies import ISO_4217_CODES
from services.product._delist import SELLERS, on_user_event
from services.product._projection import ProjectedSellers, SellerRebuild, is_built, is_seller
from services.product._replay import ProductState, replay
from services.product._schema import DATABASE_FILE, MIGRATIONS
from services.product._sellers import SellerDirectory, UserLookup, UserServiceSellers
from services.product._servicer import SERVICE_NAME, ProductServicer
from services.product._store import (
    PRODUCT_TYPE,
    PRODUCTS,
    RESERVATION_TYPE,
    ProductStore,
    SqliteProductStore,
    delist_seller,
)

__all__ = [
    "DATABASE_FILE",
    "ISO_4217_CODES",
    "MIGRATIONS",
    "PAGE_TOKEN_SECRET",
    "PRODUCTS",
    "PRODUCT_TYPE",
    "RESERVATION_TYPE",
    "SELLERS",
    "SERVICE_NAME",
    "ProductServicer",
    "ProjectedSellers",
    "ProductState",
    "ProductStore",
    "SellerDirectory",
    "SellerRebuild",
    "SqliteProductStore",
    "UserLookup",
    "UserServiceSellers",
    "delist_seller",
    "is_built",
    "is_seller",
    "on_user_event",
    "product_service",
    "replay",
    "run",
]
