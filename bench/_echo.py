"""Raw grpcio echo servers: the limit of a Python gRPC stack on this machine.

They serve ``switchboard.user.v1.UserService/GetUser`` (so ghz and the Python
load generator call them exactly as they call the real user service) and answer
every request with the same, pre-built User: no interceptors, no storage, no
health or reflection. The request is parsed and the response serialized on every
call, as on any protobuf server. ``--kind aio`` is grpc.aio; ``--kind sync`` is
the classic ``grpc.server`` on a thread pool.

Example::

    python -m bench._echo --kind aio --listen 127.0.0.1:0 [--user-file user.bin]
    ... echo-aio listening on 127.0.0.1:40123
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from switchboard.user.v1 import user_pb2, user_service_pb2

__all__ = ["main", "sample_user"]

SYNC_WORKERS = 32
SERVICE = "switchboard.user.v1.UserService"


def sample_user() -> user_pb2.User:
    """A user shaped like the ones the user service returns (32-hex id, 16-hex etag).

    Example: ``len(sample_user().SerializeToString())`` is about 110 bytes.
    """
    user = user_pb2.User(
        id="0193a5c2f1e0" + "7d3b9a41c2e85f60aa17",
        email="bench-user-000042@bench.example",
        display_name="Bench User 000042",
        etag="9f1c2b7a55d0e4c3",
    )
    user.create_time.FromNanoseconds(1_732_700_000_123_456_789)
    user.update_time.FromNanoseconds(1_732_700_000_123_456_789)
    return user


def _handler(user: user_pb2.User, behaviour: Callable[..., Any]) -> grpc.GenericRpcHandler:
    """GetUser only (what a bare server has: one method, no health, no reflection)."""
    method = grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=user_service_pb2.GetUserRequest.FromString,
        response_serializer=user_service_pb2.GetUserResponse.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(SERVICE, {"GetUser": method})


def _aio_handler(user: user_pb2.User) -> grpc.GenericRpcHandler:
    response = user_service_pb2.GetUserResponse(user=user)

    async def get_user(request: user_service_pb2.GetUserRequest, context: Any) -> Any:
        return response

    return _handler(user, get_user)


def _sync_handler(user: user_pb2.User) -> grpc.GenericRpcHandler:
    response = user_service_pb2.GetUserResponse(user=user)

    def get_user(request: user_service_pb2.GetUserRequest, context: Any) -> Any:
        return response

    return _handler(user, get_user)


async def _serve_aio(listen: str, user: user_pb2.User) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_aio_handler(user),))
    port = server.add_insecure_port(listen)
    await server.start()
    _announce("echo-aio", listen, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(0)


def _serve_sync(listen: str, user: user_pb2.User) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=SYNC_WORKERS))
    server.add_generic_rpc_handlers((_sync_handler(user),))
    port = server.add_insecure_port(listen)
    server.start()
    _announce("echo-sync", listen, port)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    server.stop(0).wait()


def _announce(name: str, listen: str, port: int) -> None:
    host = listen.rsplit(":", 1)[0]
    print(f"{name} listening on {host}:{port}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse flags and serve until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench._echo")
    parser.add_argument("--kind", choices=("aio", "sync"), required=True)
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--user-file", type=Path, help="a serialized User to answer with")
    ns = parser.parse_args(argv)
    user = sample_user()
    if ns.user_file is not None:
        user = user_pb2.User.FromString(ns.user_file.read_bytes())
    if ns.kind == "aio":
        asyncio.run(_serve_aio(ns.listen, user))
    else:
        _serve_sync(ns.listen, user)


if __name__ == "__main__":
    main(sys.argv[1:])
