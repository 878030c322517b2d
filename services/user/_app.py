"""Assemble and run the user service process: store, servicer, server, lifecycle hooks.

Example::

    store = SqliteUserStore.open(Path("var"))
    server, port = create_server([user_service(store, store.db.secret("page_token"))], config)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from services.runtime import Lifecycle, ServerConfig, Service, serve
from services.runtime.paging import PageTokens
from services.user._servicer import SERVICE_NAME, UserServicer
from services.user._sqlite import SqliteUserStore
from services.user._store import UserStore
from switchboard.user.v1 import user_service_pb2_grpc

__all__ = ["PAGE_TOKEN_SECRET", "WatchCloser", "run", "user_service"]

log = logging.getLogger("switchboard.user")

PAGE_TOKEN_SECRET = "page_token"
"""Name of the secret (kept in the database) that signs page tokens."""


def user_service(store: UserStore, page_token_secret: bytes) -> Service:
    """The UserService binding for ``create_server`` / ``serve``."""
    servicer = UserServicer(store, PageTokens(page_token_secret))
    return Service(servicer, user_service_pb2_grpc.add_UserServiceServicer_to_server, SERVICE_NAME)


class WatchCloser:
    """Lifecycle hook: announces the bound address, and ends watch streams on shutdown.

    The ``user listening on HOST:PORT`` line is what scripts and tests read
    to learn the port when listening on port 0.
    """

    def __init__(self, store: UserStore, config: ServerConfig) -> None:
        self._store = store
        self._config = config

    async def started(self, port: int) -> None:
        log.info("user listening on %s", self._config.listen_on(port))

    async def stopping(self) -> None:
        self._store.end_watches()


async def run(
    store: SqliteUserStore, config: ServerConfig, hooks: Sequence[Lifecycle] = ()
) -> None:
    """Serve the user service until SIGTERM/SIGINT, then stop gracefully and close the store."""
    service = user_service(store, store.db.secret(PAGE_TOKEN_SECRET))
    try:
        await serve([service], config, hooks=[WatchCloser(store, config), *hooks])
    finally:
        store.close()
