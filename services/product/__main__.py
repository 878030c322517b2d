"""``python -m services.product``: the product service process.

Finds the user service (for the seller check) through the registry
(``--registry`` / ``SWITCHBOARD_REGISTRY``) and/or static addresses
(``SWITCHBOARD_ADDRESSES_USER=host:port,...``), and registers itself there.

Example::

    python -m services.product --listen 127.0.0.1:0 --data-dir /tmp/sb --registry 127.0.0.1:50051
    ... INFO switchboard.product product listening on 127.0.0.1:41235
"""

from __future__ import annotations

import argparse
import dataclasses
import sqlite3
import sys
from collections.abc import Sequence
from typing import NoReturn

from services.product._app import run
from services.product._sqlite import SqliteProductStore
from services.runtime import ConfigError, Lifecycle, ServerConfig, add_server_arguments, run_main
from services.runtime._agent import RegistrationAgent
from services.runtime._client import ClientConfig
from services.runtime._discovery import RegistryConfig, add_registry_arguments
from services.runtime.storage import DATA_DIR_ENV, MigrationError, resolve_data_dir

DEFAULT_PORT = 50053
SERVICE = "product"


def build_parser() -> argparse.ArgumentParser:
    """The command line: server flags, registry flags and ``--data-dir``."""
    parser = argparse.ArgumentParser(
        prog="python -m services.product", description="Switchboard product service"
    )
    add_server_arguments(parser, default_port=DEFAULT_PORT)
    add_registry_arguments(parser)
    parser.add_argument(
        "--data-dir",
        default=None,
        help=f"directory of product.db (env {DATA_DIR_ENV}; default ./var)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Parse flags, open the database (migrating it), serve until SIGTERM, exit 0."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        config = ServerConfig.from_args(ns)
        registry = RegistryConfig.from_args(ns)
    except (ConfigError, ValueError) as err:
        parser.error(str(err))
    data_dir = resolve_data_dir(ns.data_dir)
    try:
        store = SqliteProductStore.open(data_dir)
    except (MigrationError, sqlite3.Error, OSError) as err:
        print(f"error: cannot open {data_dir}: {err}", file=sys.stderr)
        sys.exit(2)
    client = dataclasses.replace(ClientConfig.from_env(), registry=registry)
    hooks: list[Lifecycle] = []
    if registry.enabled:
        hooks.append(RegistrationAgent.for_server(SERVICE, config, registry))
    run_main(lambda: run(store, config, client, hooks), log_level=config.log_level)


if __name__ == "__main__":
    main()
