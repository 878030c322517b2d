"""Assemble and run the user service process: store, servicer, server, lifecycle hooks.

Example::

    store = UserStore.open(Path("var"))
    server, port = create_server([user_service(store, store.db.secret("page_token"))], config)
"""

from __future__ import annotations

from collections.abc import Sequence

from services.runtime import Lifecycle, ListeningHook, ServerConfig, Service, serve
from services.runtime.paging import PageTokens
from services.user._servicer import SERVICE_NAME, UserServicer
from services.user._store import UserStore
from switchboard.user.v1 import user_service_pb2_grpc

__all__ = ["PAGE_TOKEN_SECRET", "run", "user_service"]

PAGE_TOKEN_SECRET = "page_token"
"""Name of the secret (kept in the database) that signs page tokens."""


def user_service(store: UserStore, page_token_secret: bytes) -> Service:
    """The UserService binding for ``create_server`` / ``serve``."""
    servicer = UserServicer(store, PageTokens(page_token_secret))
    return Service(servicer, user_service_pb2_grpc.add_UserServiceServicer_to_server, SERVICE_NAME)


async def run(store: UserStore, config: ServerConfig, hooks: Sequence[Lifecycle] = ()) -> None:
    """Serve the user service until SIGTERM/SIGINT, then stop gracefully and close the store.

    The :class:`ListeningHook` logs ``user listening on HOST:PORT`` (the line
    scripts and tests read to learn the port) and ends watch streams on shutdown.
    """
    service = user_service(store, store.db.secret(PAGE_TOKEN_SECRET))
    listening = ListeningHook("user", config, store.end_watches)
    try:
        await serve([service], config, hooks=[listening, *hooks])
    finally:
        store.close()
