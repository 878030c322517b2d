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

from grpc_health.v1 import health_pb2  # type: ignore[import-untyped, unused-ignore]

from registry._http import registry_http_routes
from registry._observe import InstrumentedStore, count_expiry, refresh_gauges
from registry._servicer import RegistryServicer, registry_service
from registry._settings import RegistrySettings, add_registry_arguments
from registry.console import Console
from registry.store import MemoryStore, RegistryStore
from registry.store.etcd import EtcdStore
from registry.xds import ControlPlane
from services.runtime import (
    ConfigError,
    HealthServicer,
    ListeningHook,
    ServerConfig,
    Service,
    add_server_arguments,
    run_main,
    serve,
    set_health_status,
)
from services.runtime.metrics import add_scrape_hook

__all__ = ["DEFAULT_PORT", "build_parser", "main", "open_store", "parse_args", "run"]

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

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
    """Lifecycle hook: on start, report the store's health; on stop, end open KeepAlive
    and Watch streams (they would hold up the drain) and the store's background work."""

    def __init__(self, servicer: RegistryServicer, health: _StoreHealth) -> None:
        self._servicer = servicer
        self._health = health

    async def started(self, port: int) -> None:
        """serve() has just said SERVING: correct it if the store is unreachable."""
        await self._health.apply()

    async def stopping(self) -> None:
        await self._servicer.stop()  # KeepAlive streams
        await self._servicer.store.close()  # Watch streams, and the reaper


class _StoreHealth:
    """Mirrors the store's reachability in the gRPC health status (NOT_SERVING while down)."""

    def __init__(self, store: RegistryStore, services: list[Service]) -> None:
        self.health = HealthServicer()
        self._store = store
        self._services = services
        self._tasks: set[asyncio.Task[None]] = set()
        if isinstance(store, EtcdStore):
            store.on_health = self._changed

    def _changed(self, healthy: bool) -> None:
        task = asyncio.create_task(self.apply())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def apply(self) -> None:
        """Set SERVING or NOT_SERVING from the store's last probe."""
        healthy = self._store.healthy
        await set_health_status(self.health, self._services, SERVING if healthy else NOT_SERVING)


def open_store(settings: RegistrySettings) -> RegistryStore:
    """The store the settings ask for: etcd with ``--etcd``, else in memory.

    Example: ``store = open_store(RegistrySettings()); await store.start()``.
    """
    etcd = settings.etcd
    if etcd is not None:
        _log.info("keeping state in etcd %s under %s", ",".join(etcd.endpoints), etcd.prefix)
        return EtcdStore(etcd, settings.limits)
    return MemoryStore(settings.limits, on_expired=count_expiry)


async def run(
    config: ServerConfig, settings: RegistrySettings, *, stop: asyncio.Event | None = None
) -> None:
    """Serve the registry until SIGTERM/SIGINT (or ``stop``), on the store the settings name."""
    backend = open_store(settings)
    store = InstrumentedStore(backend, backend="memory" if settings.etcd is None else "etcd")
    await store.start()
    # The web console at / on the HTTP port; off under --auth (it checks no JWT identities).
    locked = "the registry runs with --auth; use the gRPC API" if config.auth else None
    console = Console(store, token=settings.token, locked=locked)
    servicer = RegistryServicer(console.tap(store), settings, bind_certificates=config.mtls)
    xds = ControlPlane(store)  # xDS (ADS) on the same port: any gRPC client dials xds:///name
    services = [registry_service(servicer), xds.service()]
    health = _StoreHealth(backend, services)
    if settings.token is None:
        _log.warning("no token configured: registry writes are open to every client")
    remove_hook = add_scrape_hook(lambda: refresh_gauges(store))
    try:
        await serve(
            services,
            config,
            hooks=[
                ListeningHook("registry", config, extra=console.url_note),
                _EndStreams(servicer, health),
                xds,
                console,
            ],
            stop=stop,
            http_routes=[*registry_http_routes(store), *console.routes()],
            health=health.health,
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
