"""Assemble and run the product service process: store, seller check, servicer, server.

Example::

    store = SqliteProductStore.open(Path("var"))
    service = product_service(store, sellers, store.db.secret(PAGE_TOKEN_SECRET))
    server, port = create_server([service], config)
"""

from __future__ import annotations

from collections.abc import Sequence

from services.product._sellers import SellerDirectory, UserLookupClient, UserServiceSellers
from services.product._servicer import SERVICE_NAME, ProductServicer
from services.product._sqlite import SqliteProductStore
from services.product._store import ProductStore
from services.runtime import (
    Client,
    ClientConfig,
    Lifecycle,
    ListeningHook,
    ServerConfig,
    Service,
    serve,
)
from services.runtime.paging import PageTokens
from switchboard.product.v1 import product_service_pb2_grpc

__all__ = ["PAGE_TOKEN_SECRET", "WatchCloser", "product_service", "run"]

PAGE_TOKEN_SECRET = "page_token"
"""Name of the secret (kept in the database) that signs page tokens."""


def product_service(
    store: ProductStore, sellers: SellerDirectory, page_token_secret: bytes
) -> Service:
    """The ProductService binding for ``create_server`` / ``serve``."""
    servicer = ProductServicer(store, sellers, PageTokens(page_token_secret))
    add = product_service_pb2_grpc.add_ProductServiceServicer_to_server
    return Service(servicer, add, SERVICE_NAME)


class WatchCloser(ListeningHook):
    """Lifecycle hook: logs ``product listening on HOST:PORT`` (the line scripts and tests
    read to learn the port), and ends the store's watch streams on shutdown."""

    def __init__(self, store: ProductStore, config: ServerConfig) -> None:
        super().__init__("product", config, store.end_watches)


async def run(
    store: SqliteProductStore,
    config: ServerConfig,
    client_config: ClientConfig,
    hooks: Sequence[Lifecycle] = (),
) -> None:
    """Serve until SIGTERM/SIGINT, then stop gracefully; close the client and the store."""
    try:
        async with Client(client_config) as client:
            sellers = UserServiceSellers(await UserLookupClient.connect(client))
            service = product_service(store, sellers, store.db.secret(PAGE_TOKEN_SECRET))
            await serve([service], config, hooks=[WatchCloser(store, config), *hooks])
    finally:
        store.close()
