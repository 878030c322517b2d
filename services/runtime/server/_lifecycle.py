"""Run a server until SIGTERM/SIGINT, then stop in order; the ``main`` of every binary.

Lifecycle::

    create_server -> start -> health SERVING -> hook.started(port) for each hook
    ... SIGTERM or SIGINT ...
    health NOT_SERVING -> hook.stopping() (last hook first) -> server.stop(grace) -> return

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

from services.runtime.config import ConfigError, ServerConfig
from services.runtime.server._build import (
    NOT_SERVING,
    SERVING,
    BindError,
    HealthServicer,
    Service,
    create_server,
    set_health_status,
)

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
) -> None:
    """Serve until SIGTERM/SIGINT (or until ``stop`` is set), then stop gracefully.

    Example: ``await serve([service], ServerConfig(listen="127.0.0.1:50052"))``.
    """
    stop = stop or asyncio.Event()
    health = HealthServicer()
    server, port = create_server(services, config, health=health)
    await set_health_status(health, services, NOT_SERVING)
    remove_handlers = _handle_signals(stop)
    started: list[Lifecycle] = []
    try:
        await server.start()
        await set_health_status(health, services, SERVING)
        _log.info("serving %s on port %d", ", ".join(s.name for s in services) or "-", port)
        for hook in hooks:
            await hook.started(port)
            started.append(hook)
        await stop.wait()
    finally:
        await _shutdown(server, health, started, config.grace_s)
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
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


# --- process entry point ------------------------------------------------------------


class _OneLineFormatter(logging.Formatter):
    """``time level logger message``, one line per record (tracebacks folded in)."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", " | ")


def configure_logging(level: str | int = "INFO") -> None:
    """Log to stderr, one line per record: ``time level logger message``.

    Example: ``configure_logging("DEBUG")``.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)


def run_main(main: Callable[[], Awaitable[object]], *, log_level: str | int = "INFO") -> NoReturn:
    """Run ``main()`` on a new event loop and exit the process.

    Exit 0 after a graceful stop; exit 2 with a one-line message (no
    traceback) when the port is busy or the config is bad; exit 130 on a
    Ctrl-C that lands before the signal handlers are in place.

    Example: ``run_main(lambda: serve(services, config), log_level=config.log_level)``.
    """
    configure_logging(log_level)
    try:
        asyncio.run(_await(main))
    except (BindError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(_EXIT_USAGE)
    except KeyboardInterrupt:
        sys.exit(128 + signal.SIGINT)
    sys.exit(0)


async def _await(main: Callable[[], Awaitable[object]]) -> None:
    await main()
