"""``python -m services.user``: the user service process.

Registers itself with the registry when one is configured (``--registry`` /
``SWITCHBOARD_REGISTRY``), so the product service can find it. Keeps its
data in ``<data dir>/user.db``, or in PostgreSQL with ``--database-url``.
The shape of the binary (flags, exit codes) is :func:`services.runtime.run_service`.

Example::

    python -m services.user --listen 127.0.0.1:0 --data-dir /tmp/sb --registry 127.0.0.1:50051
    ... INFO switchboard.user user listening on 127.0.0.1:41234
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

from services.runtime import run_service
from services.user._app import run
from services.user._store import UserStore

DEFAULT_PORT = 50052


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Parse flags, open the database (migrating it), serve until SIGTERM, exit 0."""
    run_service(
        name="user",
        default_port=DEFAULT_PORT,
        database_file=UserStore.DATABASE_FILE,
        open_store=UserStore.open,
        serve=lambda store, setup: run(store, setup.server, setup.hooks),
        argv=argv,
    )


if __name__ == "__main__":
    main()
