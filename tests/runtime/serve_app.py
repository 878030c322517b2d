"""A tiny binary for the serve() end-to-end tests, built like a real service's ``__main__``.

``python -m tests.runtime.serve_app --listen 127.0.0.1:0`` prints ``PORT <n>``
once serving, ``BEGIN`` when a ``Slow`` call starts and ``STOPPING`` when the
lifecycle hook is told to stop.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import grpc
import grpc.aio

from services.runtime import (
    Service,
    add_server_arguments,
    parse_server_config,
    run_main,
    serve,
)

SERVICE_NAME = "switchboard.test.v1.Slow"


class PrintingHook:
    """Reports the lifecycle on stdout, where the test reads it."""

    async def started(self, port: int) -> None:
        print(f"PORT {port}", flush=True)

    async def stopping(self) -> None:
        print("STOPPING", flush=True)


async def _slow(request: bytes, context: Any) -> bytes:
    print("BEGIN", flush=True)
    await asyncio.sleep(float(request.decode()))  # simulated work that must be drained
    return b"done"


def _add(servicer: Any, server: grpc.aio.Server) -> None:
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Slow": grpc.unary_unary_rpc_method_handler(servicer)
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="serve-app")
    add_server_arguments(parser, default_port=0)
    config = parse_server_config(parser, argv)
    service = Service(_slow, _add, SERVICE_NAME)
    run_main(lambda: serve([service], config, hooks=[PrintingHook()]), log_level=config.log_level)


if __name__ == "__main__":
    main()
