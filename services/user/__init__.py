"""The user service: users with a unique, validated email and a display name.

Run it with ``python -m services.user`` (see ``--help``). Pieces:

- :class:`UserServicer` — validates requests and calls the :class:`UserStore`.
- :class:`UserStore` — the users on the shared resource-store skeleton
  (``<data dir>/user.db``, or PostgreSQL).
- :func:`user_service` — the ``Service`` binding for ``create_server``/``serve``.
- :func:`replay` — rebuilds the users from the change log (event sourcing).

Example::

    store = UserStore.open(Path("var"))
    server, port = create_server([user_service(store, store.db.secret(PAGE_TOKEN_SECRET))],
                                 ServerConfig(listen="127.0.0.1:0"))
"""

from __future__ import annotations

from services.user._app import PAGE_TOKEN_SECRET, run, user_service
from services.user._replay import replay
from services.user._schema import DATABASE_FILE, MIGRATIONS
from services.user._servicer import SERVICE_NAME, UserServicer
from services.user._store import USER_TYPE, USERS, SqliteUserStore, UserStore

__all__ = [
    "DATABASE_FILE",
    "MIGRATIONS",
    "PAGE_TOKEN_SECRET",
    "SERVICE_NAME",
    "USERS",
    "USER_TYPE",
    "SqliteUserStore",
    "UserServicer",
    "UserStore",
    "replay",
    "run",
    "user_service",
]
