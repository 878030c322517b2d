"""The ``main`` of a service binary that keeps its state in one store under a data dir.

Every such binary has the same shape: server flags + registry flags +
``--data-dir`` or ``--database-url`` (PostgreSQL); parse them (a bad flag
or ``SWITCHBOARD_*`` value is a usage error, exit 2); open the store,
migrating it (an unusable data dir prints ``error: cannot open DIR: ...``
and exits 2); register with the registry when
one is configured; serve until SIGTERM and exit 0 (see :func:`run_main`).
:func:`run_service` is that shape; the service brings its store and its
``serve`` coroutine.

Example (``services/greeter/__main__.py``)::

    def main(argv: Sequence[str] | None = None) -> NoReturn:
        run_service(
            name="greeter",
            default_port=50052,
            database_file="greeter.db",
            open_store=SqliteUserStore.open,
            serve=lambda store, setup: run(store, setup.server, setup.hooks),
            argv=argv,
        )
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, TypeVar

from services.runtime.agent import RegistrationAgent
from services.runtime.client._client import ClientConfig
from services.runtime.client._discovery import RegistryConfig, add_registry_arguments
from services.runtime.config import (
    ClientTlsConfig,
    ConfigError,
    ServerConfig,
    add_client_tls_arguments,
    add_server_arguments,
)
from services.runtime.server._http import current_http
from services.runtime.server._lifecycle import Lifecycle, run_main
from services.runtime.storage import (
    DATA_DIR_ENV,
    DATABASE_URL_ENV,
    MigrationError,
    resolve_data_dir,
    resolve_database_url,
)

__all__ = ["ListeningHook", "ServiceSetup", "run_service", "service_parser"]

S = TypeVar("S")

_EXIT_USAGE = 2


@dataclass(frozen=True)
class ServiceSetup:
    """What a service's ``serve`` gets from :func:`run_service`: its parsed configuration
    and the lifecycle hooks to pass on to :func:`serve` (the registration agent, if any).

    Example: ``await run(store, setup.server, setup.hooks)``.
    """

    server: ServerConfig
    registry: RegistryConfig
    hooks: tuple[Lifecycle, ...] = ()
    client_tls: ClientTlsConfig = ClientTlsConfig()

    def client_config(self, environ: Mapping[str, str] | None = None) -> ClientConfig:
        """The client runtime's config (``SWITCHBOARD_*`` variables) with this process's
        registry flags and ``--client-tls-*`` flags (which win over the variables)."""
        config = ClientConfig.from_env(environ)
        return dataclasses.replace(
            config,
            registry=self.registry,
            credentials=self.client_tls.credentials() or config.credentials,
            channel_options=config.channel_options + self.client_tls.channel_options(),
        )


class ListeningHook:
    """Lifecycle hook: logs ``<name> listening on HOST:PORT (http HOST:PORT)`` once serving
    (the HTTP part when the side port is on); on shutdown
    runs ``on_stopping`` (e.g. ending the store's watch streams, which would hold up the drain).

    The log line is what scripts and tests read to learn the port when
    listening on port 0. ``extra`` adds to the end of it once serving (the registry
    names its web console's URL). Example: ``ListeningHook("greeter", config, store.end_watches)``.
    """

    def __init__(
        self,
        name: str,
        config: ServerConfig,
        on_stopping: Callable[[], None] | None = None,
        *,
        extra: Callable[[], str] | None = None,
    ) -> None:
        self._name = name
        self._config = config
        self._on_stopping = on_stopping
        self._extra = extra
        self._log = logging.getLogger(f"switchboard.{name}")

    async def started(self, port: int) -> None:
        line = f"{self._name} listening on {self._config.listen_on(port)}"
        http = current_http()
        if http is not None:
            line += f" (http {http.listen})"
        line += _security(self._config)
        if self._extra is not None:
            line += self._extra()
        if self._log.isEnabledFor(logging.INFO):
            self._log.info(line)
        else:  # whoever started us on port 0 needs the port, whatever the log level
            print(line, file=sys.stderr, flush=True)

    async def stopping(self) -> None:
        if self._on_stopping is not None:
            self._on_stopping()


def service_parser(name: str, default_port: int, database_file: str) -> argparse.ArgumentParser:
    """The command line of ``python -m services.<name>``: server and registry flags,
    ``--data-dir``. Example: ``service_parser("greeter", 50052, "greeter.db").parse_args([])``."""
    parser = argparse.ArgumentParser(
        prog=f"python -m services.{name}", description=f"Switchboard {name} service"
    )
    add_server_arguments(parser, default_port=default_port)
    add_registry_arguments(parser)
    add_client_tls_arguments(parser)
    parser.add_argument(
        "--data-dir",
        default=None,
        help=f"directory of {database_file} (env {DATA_DIR_ENV}; default ./var)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help=f"postgresql://... to keep the data in PostgreSQL instead (env {DATABASE_URL_ENV})",
    )
    return parser


def run_service(
    *,
    name: str,
    default_port: int,
    database_file: str,
    open_store: Callable[[Path | str], S],
    serve: Callable[[S, ServiceSetup], Awaitable[object]],
    argv: Sequence[str] | None = None,
) -> NoReturn:
    """Parse flags, open the store (migrating it), serve until SIGTERM, exit 0.

    ``open_store(location)`` (the ``--database-url``, else the data dir) runs
    before the event loop starts; ``serve(store, setup)`` runs on it and owns
    the store from then on (it closes it).
    """
    parser = service_parser(name, default_port, database_file)
    ns = parser.parse_args(argv)
    server, registry, client_tls = _configs(parser, ns)
    store = _open(open_store, _location(parser, ns))
    hooks: tuple[Lifecycle, ...] = ()
    if registry.enabled:
        hooks = (RegistrationAgent.for_server(name, server, registry),)
    setup = ServiceSetup(server, registry, hooks, client_tls)
    run_main(lambda: serve(store, setup), config=server, name=name)


def _configs(
    parser: argparse.ArgumentParser, ns: argparse.Namespace
) -> tuple[ServerConfig, RegistryConfig, ClientTlsConfig]:
    """The server, registry and client TLS configs of ``ns``; a bad value is a usage
    error (exit 2)."""
    try:
        return (
            ServerConfig.from_args(ns),
            RegistryConfig.from_args(ns),
            ClientTlsConfig.from_args(ns),
        )
    except (ConfigError, ValueError) as err:
        parser.error(str(err))


def _location(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> Path | str:
    """The PostgreSQL URL if one is set, else the data dir; a bad URL is a usage error."""
    try:
        url = resolve_database_url(ns.database_url)
    except ValueError as err:
        parser.error(str(err))
    return url or resolve_data_dir(ns.data_dir)


def _open(open_store: Callable[[Path | str], S], location: Path | str) -> S:
    """``open_store(location)``; a store that cannot be opened is one line on stderr, exit 2."""
    try:
        return open_store(location)
    except ConnectionError as err:  # PostgreSQL: the message names the server, not the password
        print(f"error: {err}", file=sys.stderr)
        sys.exit(_EXIT_USAGE)
    except (MigrationError, sqlite3.Error, OSError) as err:
        print(f"error: cannot open {location}: {err}", file=sys.stderr)
        sys.exit(_EXIT_USAGE)


def _security(config: ServerConfig) -> str:
    """What the listening line says of TLS: nothing for plaintext, else which kind."""
    if config.mtls:
        return " with mutual TLS (clients need a certificate signed by --tls-client-ca)"
    return " with TLS" if config.tls else ""
