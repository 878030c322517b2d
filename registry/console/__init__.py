"""The registry's read-only web console: the page at ``/`` and its JSON API.

:class:`Console` is both the console's routes (``console.routes()``, served on
the registry's HTTP side port) and a lifecycle hook that starts and stops the
live view (:class:`ConsoleModel`) with the server.

Example::

    console = Console(store, token=settings.token)
    servicer = RegistryServicer(console.tap(store), settings)   # notes granted lease TTLs
    await serve(services, config, hooks=[console], http_routes=console.routes())
"""

from __future__ import annotations

from registry.console._health import check_health
from registry.console._leases import TtlTap
from registry.console._model import ConsoleModel, instance_json
from registry.console._web import COOKIE, SECURITY_HEADERS, console_routes
from registry.store import RegistryStore
from services.runtime import HttpRoute, current_http_address

__all__ = [
    "COOKIE",
    "SECURITY_HEADERS",
    "Console",
    "ConsoleModel",
    "TtlTap",
    "check_health",
    "console_routes",
    "instance_json",
]


class Console:
    """The console of one registry process: its model, routes and start/stop hook."""

    def __init__(
        self, store: RegistryStore, *, token: str | None = None, locked: str | None = None
    ) -> None:
        self.model = ConsoleModel(store, health_check=check_health)
        self._token = token
        self._locked = locked

    def tap(self, store: RegistryStore) -> TtlTap:
        """``store`` for the servicer to write through, noting each granted lease TTL."""
        return TtlTap(store, self.model.lease_ttls)

    def routes(self) -> list[HttpRoute]:
        """The console's routes (``/``, ``/static/*``, ``/login``, ``/api/v1/*``)."""
        return console_routes(self.model, self._token, locked=self._locked)

    def url_note(self) -> str:
        """``, console http://HOST:PORT/`` for the listening line (empty when HTTP is off).

        Example: ``ListeningHook("registry", config, extra=console.url_note)``.
        """
        address = current_http_address()
        if address is None or self._locked is not None:
            return ""
        return f", console http://{address}/"

    async def started(self, port: int) -> None:
        """Start following the store once the server is up (not when locked)."""
        if self._locked is None:
            await self.model.start()

    async def stopping(self) -> None:
        """End the SSE streams first: they would hold up the HTTP server's shutdown."""
        await self.model.stop()
