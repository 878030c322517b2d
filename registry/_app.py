"""The registry process: flags, store, servicer and the runtime's ``serve``.

``python -m registry --listen 127.0.0.1:0`` serves RegistryService (with health
and reflection) and logs ``registry listening on 127.0.0.1:<port>`` once it
answers. SIGTERM marks it NOT_SERVING, ends open watches with UNAVAILABLE (so
watchers move on at once instead of waiting out the grace period), drains
in-flight calls and exits 0.

Example::

    config, settings = parse_args(["--listen", "127.0.0.1:0", "--ttl-max", "60"])
    await run(config, settings)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from registry._http import registry_http_routes
from registry._observe import InstrumentedStore, refresh_gauges
from registry._servicer import RegistryServicer, registry_service
from registry._settings import RegistrySettings, add_registry_arguments
from registry.console import Console
from registry.store import MemoryStore
from registry.xds import ControlPlane
from services.runtime import (
    ConfigError,
    ListeningHook,
    ServerConfig,
    add_server_arguments,
    run_main,
    serve,
)
from services.runtime.metrics import add_scrape_hook

__all__ = ["DEFAULT_PORT", "build_parser", "main", "parse_args", "run"]

DEFAULT_PORT = 50051

_log = logging.getLogger("registry")


def build_parser() -> argparse.ArgumentParser:
    """The command line: the runtime's server flags plus the registry's own."""
    parser = argparse.ArgumentParser(
        prog="python -m registry",
        description="Switchboard registry: where service instances register and are found.",
    )
    add_server_arguments(parser, default_port=DEFAULT_PORT)
    add_registry_arguments(parser)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> tuple[ServerConfig, RegistrySettings]:
    """Parse flags and ``SWITCHBOARD_*`` variables; a bad value exits 2 with one line.

    Example: ``config, settings = parse_args(["--token-file", "/run/secrets/registry"])``.
    """
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        config, settings = ServerConfig.from_args(ns), RegistrySettings.from_args(ns)
    except ConfigError as err:
        parser.error(str(err))
    if config.auth is not None and settings.token is not None:
        # Under --auth a bearer must be a JWT: the static token would be refused as one.
        parser.error(
            "--auth and --token exclude each other: with --auth the policy says who writes"
        )
    return config, settings


class _EndStreams:
    """Lifecycle hook: on stop, end open KeepAlive and Watch streams (they would hold
    up the drain) and the reaper."""

    def __init__(self, servicer: RegistryServicer) -> None:
        self._servicer = servicer

    async def started(self, port: int) -> None:
        """Nothing to do on start."""

    async def stopping(self) -> None:
        await self._servicer.stop()  # KeepAlive streams
        await self._servicer.store.close()  # Watch streams, and the reaper


async def run(
    config: ServerConfig, settings: RegistrySettings, *, stop: asyncio.Event | None = None
) -> None:
    """Serve the registry with an in-memory store until SIGTERM/SIGINT (or ``stop``)."""
    store = InstrumentedStore(MemoryStore(settings.limits), backend="memory")
    await store.start()
    # The web console at / on the HTTP port; off under --auth (it checks no JWT identities).
    locked = "the registry runs with --auth; use the gRPC API" if config.auth else None
    console = Console(store, token=settings.token, locked=locked)
    servicer = RegistryServicer(console.tap(store), settings, bind_certificates=config.mtls)
    xds = ControlPlane(store)  # xDS (ADS) on the same port: any gRPC client dials xds:///name
    if settings.token is None:
        _log.warning("no token configured: registry writes are open to every client")
    remove_hook = add_scrape_hook(lambda: refresh_gauges(store))
    try:
        await serve(
            [registry_service(servicer), xds.service()],
            config,
            hooks=[
                ListeningHook("registry", config, extra=console.url_note),
                _EndStreams(servicer),
                xds,
                console,
            ],
            stop=stop,
            http_routes=[*registry_http_routes(store), *console.routes()],
        )
    finally:
        remove_hook()
        await store.close()


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``python -m registry`` entry point."""
    config, settings = parse_args(argv)
    run_main(lambda: run(config, settings), config=config, name="registry")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
