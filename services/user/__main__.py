"""``python -m services.user``: the user service process.

Registers itself with the registry when one is configured (``--registry`` /
``SWITCHBOARD_REGISTRY``), so the product service can find it.

Example::

    python -m services.user --listen 127.0.0.1:0 --data-dir /tmp/sb --registry 127.0.0.1:50051
    ... INFO switchboard.user user listening on 127.0.0.1:41234
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Sequence
from typing import NoReturn

from services.runtime import ConfigError, Lifecycle, ServerConfig, add_server_arguments, run_main
from services.runtime._agent import RegistrationAgent
from services.runtime._discovery import RegistryConfig, add_registry_arguments
from services.runtime.storage import DATA_DIR_ENV, MigrationError, resolve_data_dir
from services.user._app import run
from services.user._sqlite import SqliteUserStore

DEFAULT_PORT = 50052
SERVICE = "user"


def build_parser() -> argparse.ArgumentParser:
    """The command line: server flags, registry flags and ``--data-dir``."""
    parser = argparse.ArgumentParser(
        prog="python -m services.user", description="Switchboard user service"
    )
    add_server_arguments(parser, default_port=DEFAULT_PORT)
    add_registry_arguments(parser)
    parser.add_argument(
        "--data-dir",
        default=None,
        help=f"directory of user.db (env {DATA_DIR_ENV}; default ./var)",
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
        store = SqliteUserStore.open(data_dir)
    except (MigrationError, sqlite3.Error, OSError) as err:
        print(f"error: cannot open {data_dir}: {err}", file=sys.stderr)
        sys.exit(2)
    hooks: list[Lifecycle] = []
    if registry.enabled:
        hooks.append(RegistrationAgent.for_server(SERVICE, config, registry))
    run_main(lambda: run(store, config, hooks), log_level=config.log_level)


if __name__ == "__main__":
    main()
