"""The user service: users with a unique, validated email and a display name.

Run it with ``python -m services.user`` (see ``--help``). Pieces:

- :class:`UserServicer` — validates requests and calls a :class:`UserStore`.
- :class:`SqliteUserStore` — the embedded store (``<data dir>/user.db``).
- :func:`user_service` — the ``Service`` binding for ``create_server``/``serve``.
- :func:`replay` — rebuilds the users from the change log (event sourcing).

Example::

    store = SqliteUserStore.open(Path("var"))
    server, port = create_server([user_service(store, store.db.secret(PAGE_TOKEN_SECRET))],
                                 ServerConfig(listen="127.0.0.1:0"))
"""

from __future__ import annotations

from services.user._app import PAGE_TOKEN_SECRET, WatchCloser, run, user_service
from services.user._replay import replay
from services.user._schema import DATABASE_FILE, MIGRATIONS
from services.user._servicer import SERVICE_NAME, UserServicer
from services.user._sqlite import INLINE_PAGE_LIMIT, USER_TYPE, SqliteUserStore
from services.user._store import UserPage, UserStore

__all__ = [
    "DATABASE_FILE",
    "INLINE_PAGE_LIMIT",
    "MIGRATIONS",
    "PAGE_TOKEN_SECRET",
    "SERVICE_NAME",
    "USER_TYPE",
    "SqliteUserStore",
    "UserPage",
    "UserServicer",
    "UserStore",
    "WatchCloser",
    "replay",
    "run",
    "user_service",
]
