"""The HTTP side port: ``/metrics`` on every process, plus routes a process adds.

Served by aiohttp on the gRPC server's event loop, started after the gRPC
server and stopped after it drains (see :func:`serve`). The default address is
the gRPC listen host at the gRPC port + 1000 (``--http-listen``,
``SWITCHBOARD_HTTP_LISTEN``; ``off`` disables it). ``/`` is left to the process.

A process adds routes with :class:`HttpRoute` (the registry serves
``/sd/prometheus`` this way)::

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": "world"})

    await serve(services, config, http_routes=[HttpRoute("GET", "/hello", hello)])

While the server runs, :func:`current_http_address` is the address other
processes should scrape (the agent registers it as ``metrics_address``).
"""

from __future__ import annotations

import contextvars
import errno
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from aiohttp import web

from services.runtime import metrics
from services.runtime.config import ServerConfig
from services.runtime.server._build import BindError

__all__ = ["HttpEndpoint", "HttpRoute", "HttpSidePort", "current_http_address", "current_http"]

_log = logging.getLogger("switchboard.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpRoute(NamedTuple):
    """One route of the HTTP side port: ``HttpRoute("GET", "/sd/prometheus", handler)``."""

    method: str
    path: str
    handler: Handler


@dataclass(frozen=True)
class HttpEndpoint:
    """Where the side port listens (``listen``) and the address to announce (``advertise``)."""

    listen: str
    advertise: str


_current: contextvars.ContextVar[HttpEndpoint | None] = contextvars.ContextVar(
    "switchboard_http", default=None
)


def current_http() -> HttpEndpoint | None:
    """The running server's HTTP side port (None when off or outside :func:`serve`)."""
    return _current.get()


def current_http_address() -> str | None:
    """The advertised ``host:port`` of the running server's HTTP side port, or None."""
    endpoint = _current.get()
    return None if endpoint is None else endpoint.advertise


async def _metrics(request: web.Request) -> web.Response:
    body = await metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


class HttpSidePort:
    """An aiohttp server on one host:port with ``/metrics`` and the given routes.

    Example::

        side = HttpSidePort(config, routes)
        endpoint = await side.start()       # None when --http-listen off
        ...
        await side.stop()
    """

    def __init__(self, config: ServerConfig, routes: Sequence[HttpRoute] = ()) -> None:
        self._config = config
        self._routes = (HttpRoute("GET", "/metrics", _metrics), *routes)
        self._runner: web.AppRunner | None = None

    async def start(self) -> HttpEndpoint | None:
        """Listen and serve; the endpoint is also made :func:`current_http`."""
        address = self._config.http_address
        if address is None:
            return None
        app = web.Application()
        for route in self._routes:
            app.router.add_route(route.method, route.path, route.handler)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        host, port = address
        try:
            await self._listen(runner, host, port)
        except OSError as err:
            await runner.cleanup()
            raise _bind_error(host, port, err) from None
        self._runner = runner
        bound = _bound_port(runner)
        endpoint = HttpEndpoint(_join(host, bound), self._config.advertise_address(bound))
        _current.set(endpoint)
        _log.info("HTTP side port on %s (/metrics)", endpoint.listen)
        return endpoint

    async def _listen(self, runner: web.AppRunner, host: str, port: int) -> None:
        """Bind ``host:port``. A derived default port (gRPC + 1000) that is taken gives
        way to a free one, with a warning: scrapers find the side port through the
        registry, which is told the real one. A port given by flag must be free."""
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as err:
            if self._config.http_listen is not None or err.errno != errno.EADDRINUSE or not port:
                raise
            _log.warning("HTTP port %d is in use: taking a free one (set --http-listen)", port)
            await web.TCPSite(runner, host, 0).start()

    async def stop(self) -> None:
        """Stop serving HTTP."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


def _bound_port(runner: web.AppRunner) -> int:
    sockname = runner.addresses[0]
    return int(sockname[1])


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bind_error(host: str, port: int, err: OSError) -> BindError:
    cause = "address already in use" if err.errno == errno.EADDRINUSE else str(err)
    return BindError(
        f"cannot listen for HTTP on {_join(host, port)}: {cause} "
        "(choose another with --http-listen HOST:PORT, or --http-listen off)"
    )
