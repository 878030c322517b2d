"""Run a server until SIGTERM/SIGINT, then stop in order; the ``main`` of every binary.

Lifecycle::

    create_server -> start -> HTTP side port -> health SERVING -> hook.started(port) each
    ... SIGTERM or SIGINT ...
    health NOT_SERVING -> hook.stopping() (last hook first) -> server.stop(grace)
    -> HTTP side port closed -> return

A second signal while stopping exits the process at once with status
128 + signal number (``os._exit``: no drain, no cleanup), for when a drain
or a hook hangs.

Example (a binary's ``__main__``)::

    def main(argv: list[str] | None = None) -> None:
        parser = argparse.ArgumentParser(prog="greeter")
        add_server_arguments(parser, default_port=50052)
        config = parse_server_config(parser, argv)
        run_main(lambda: serve([greeter_service()], config), log_level=config.log_level)
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import NoReturn, Protocol

import grpc.aio

from services.runtime import tracing
from services.runtime.config import ConfigError, ServerConfig
from services.runtime.logs import ACCESS_LOG
from services.runtime.logs import configure_logging as _configure_logging
from services.runtime.server._build import (
    NOT_SERVING,
    SERVING,
    BindError,
    HealthServicer,
    Service,
    create_server,
    set_health_status,
)
from services.runtime.server._http import HttpRoute, HttpSidePort

__all__ = ["Lifecycle", "configure_logging", "run_main", "serve"]

_log = logging.getLogger("switchboard.server")
_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_EXIT_USAGE = 2


class Lifecycle(Protocol):
    """Something that runs alongside a server, e.g. the registry agent.

    ``started`` runs once the server answers SERVING; ``stopping`` runs after
    it answers NOT_SERVING and before in-flight calls are drained.
    """

    async def started(self, port: int) -> None:
        """The server listens on ``port`` and is SERVING."""

    async def stopping(self) -> None:
        """The server is going away (deregister here)."""


async def serve(
    services: Sequence[Service],
    config: ServerConfig,
    *,
    hooks: Sequence[Lifecycle] = (),
    stop: asyncio.Event | None = None,
    http_routes: Sequence[HttpRoute] = (),
    health: HealthServicer | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or until ``stop`` is set), then stop gracefully.

    The HTTP side port (``/metrics`` plus ``http_routes``) runs alongside, on
    the same loop, unless ``config.http_listen`` is ``off``. ``health`` lets the
    caller also change the health status later (e.g. NOT_SERVING while a backing
    store is unreachable); by default serve keeps its own.
    Example: ``await serve([service], ServerConfig(listen="127.0.0.1:50052"))``.
    """
    stop = stop or asyncio.Event()
    health = health or HealthServicer()
    server, port = create_server(services, config, health=health)
    http = HttpSidePort(config, http_routes)
    await set_health_status(health, services, NOT_SERVING)
    remove_handlers = _handle_signals(stop)
    started: list[Lifecycle] = []
    try:
        await server.start()
        await http.start()
        await set_health_status(health, services, SERVING)
        _log.info("serving %s on port %d", ", ".join(s.name for s in services) or "-", port)
        for hook in hooks:
            await hook.started(port)
            started.append(hook)
        await stop.wait()
    finally:
        await _shutdown(server, health, started, config.grace_s)
        await http.stop()
        ACCESS_LOG.flush()
        remove_handlers()


async def _shutdown(
    server: grpc.aio.Server, health: HealthServicer, hooks: Sequence[Lifecycle], grace_s: float
) -> None:
    """NOT_SERVING, then hooks (last first), then drain within the grace period."""
    _log.info("stopping: NOT_SERVING, draining for up to %.1f s", grace_s)
    await health.enter_graceful_shutdown()
    for hook in reversed(hooks):
        try:
            await hook.stopping()
        except Exception:  # one failing hook must not keep the others or the drain from running
            _log.exception("lifecycle hook %r failed while stopping", hook)
    await server.stop(grace_s)
    _log.info("stopped")


def _handle_signals(stop: asyncio.Event) -> Callable[[], None]:
    """First SIGTERM/SIGINT sets ``stop``; a second one exits at once."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            _log.warning("second %s: exiting now", signal.Signals(signum).name)
            _exit_now(128 + signum)
        _log.info("received %s", signal.Signals(signum).name)
        stop.set()

    try:
        for signum in _SIGNALS:
            loop.add_signal_handler(signum, on_signal, signum)
    except (ValueError, RuntimeError, NotImplementedError):
        # Not the main thread (or no Unix signals): only ``stop`` ends the server.
        _log.debug("signal handlers not installed; stop the server with its stop event")
        return lambda: None

    def remove() -> None:
        for signum in _SIGNALS:
            loop.remove_signal_handler(signum)

    return remove


def _exit_now(status: int) -> NoReturn:
    # os._exit skips atexit and buffered writes: flush what a person should see.
    ACCESS_LOG.flush()
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


# --- process entry point ------------------------------------------------------------


def configure_logging(level: str | int = "INFO", *, log_format: str = "text") -> None:
    """Log to stderr, one line per record (``text`` or ``json``), the access log on its
    fast path. Example: ``configure_logging("DEBUG")``."""
    _configure_logging(level, log_format=log_format)


def run_main(
    main: Callable[[], Awaitable[object]],
    *,
    log_level: str | int = "INFO",
    config: ServerConfig | None = None,
    name: str | None = None,
) -> NoReturn:
    """Run ``main()`` on a new event loop and exit the process.

    ``config`` sets the log level, format and access-log sampling (it overrides
    ``log_level``); ``name`` is the service name spans carry, and turns tracing
    on when the ``OTEL_*`` variables ask for it (see :mod:`services.runtime.tracing`).

    Exit 0 after a graceful stop; exit 2 with a one-line message (no
    traceback) when the port is busy or the config is bad; exit 130 on a
    Ctrl-C that lands before the signal handlers are in place.

    Example: ``run_main(lambda: serve(services, config), log_level=config.log_level)``.
    """
    if config is None:
        _configure_logging(log_level)
    else:
        _configure_logging(
            config.log_level, log_format=config.log_format, access_log=config.access_log
        )
    if name is not None:
        tracing.configure_tracing(name)
    try:
        asyncio.run(_await(main))
    except (BindError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(_EXIT_USAGE)
    except KeyboardInterrupt:
        sys.exit(128 + signal.SIGINT)
    finally:
        tracing.shutdown_tracing()
        ACCESS_LOG.flush()
    sys.exit(0)


async def _await(main: Callable[[], Awaitable[object]]) -> None:
    await main()
