"""``python -m services.product``: the product service process.

Finds the user service (for the seller check) through the registry
(``--registry`` / ``SWITCHBOARD_REGISTRY``) and/or static addresses
(``SWITCHBOARD_ADDRESSES_USER=host:port,...``), and registers itself there.
Keeps its data in ``<data dir>/product.db``, or in PostgreSQL with
``--database-url``. The shape of the binary (flags, exit codes) is
:func:`services.runtime.run_service`.

Example::

    python -m services.product --listen 127.0.0.1:0 --data-dir /tmp/sb --registry 127.0.0.1:50051
    ... INFO switchboard.product product listening on 127.0.0.1:41235
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

from services.product._app import run
from services.product._store import ProductStore
from services.runtime import run_service

DEFAULT_PORT = 50053


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Parse flags, open the database (migrating it), serve until SIGTERM, exit 0."""
    run_service(
        name="product",
        default_port=DEFAULT_PORT,
        database_file=ProductStore.DATABASE_FILE,
        open_store=ProductStore.open,
        serve=lambda store, setup: run(store, setup.server, setup.client_config(), setup.hooks),
        argv=argv,
    )


if __name__ == "__main__":
    main()
