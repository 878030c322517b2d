"""Assemble and run the product service process: store, seller check, servicer, server.

The seller check asks the local sellers projection first and the user
service on a miss (:mod:`services.product._projection`).

Example::

    store = ProductStore.open(Path("var"))
    service = product_service(store, sellers, store.db.secret(PAGE_TOKEN_SECRET))
    server, port = create_server([service], config)
"""

from __future__ import annotations

from collections.abc import Sequence

from services.product._delist import SELLERS
from services.product._projection import SUBSCRIPTION, ProjectedSellers, SellerRebuild
from services.product._sellers import SellerDirectory, UserLookupClient, UserServiceSellers
from services.product._servicer import SERVICE_NAME, ProductServicer
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
from services.runtime.events import Subscriber
from services.runtime.paging import PageTokens
from switchboard.product.v1 import product_service_pb2_grpc

__all__ = ["PAGE_TOKEN_SECRET", "product_service", "run"]

PAGE_TOKEN_SECRET = "page_token"
"""Name of the secret (kept in the database) that signs page tokens."""


def product_service(
    store: ProductStore, sellers: SellerDirectory, page_token_secret: bytes
) -> Service:
    """The ProductService binding for ``create_server`` / ``serve``."""
    servicer = ProductServicer(store, sellers, PageTokens(page_token_secret))
    add = product_service_pb2_grpc.add_ProductServiceServicer_to_server
    return Service(servicer, add, SERVICE_NAME)


async def run(
    store: ProductStore,
    config: ServerConfig,
    client_config: ClientConfig,
    hooks: Sequence[Lifecycle] = (),
) -> None:
    """Serve until SIGTERM/SIGINT, then stop gracefully; close the client and the store.

    The :class:`ListeningHook` logs ``product listening on HOST:PORT`` and ends
    watch streams on shutdown; a :class:`Subscriber` delists the products of
    deleted sellers and keeps the sellers projection (:mod:`services.product._delist`);
    a :class:`SellerRebuild` rebuilds that projection if it is incomplete.
    """
    listening = ListeningHook("product", config, store.end_watches)
    try:
        async with Client(client_config) as client:
            users = await UserLookupClient.connect(client)
            sellers = ProjectedSellers(store.db, UserServiceSellers(users))
            service = product_service(store, sellers, store.db.secret(PAGE_TOKEN_SECRET))
            # Both consume the user service's log in the background: serving never waits.
            delisting = Subscriber(SELLERS, store.db, client)
            rebuild = SellerRebuild(store.db, SUBSCRIPTION, users.user_log)
            await serve([service], config, hooks=[listening, delisting, rebuild, *hooks])
    finally:
        store.close()
