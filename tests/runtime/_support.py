"""A tiny raw-bytes test service and helpers for the runtime tests.

The service does not depend on the project's protos: most methods take and
return raw bytes (no serializers); ``Typed*`` methods use grpc.health.v1
messages so that request decoding can be tested.

Example::

    server, port = create_server([build_service()], ServerConfig())
    await unary(channel, "Echo", b"hi")   # b"hi"
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
import grpc.aio
import pytest
from google.rpc import error_details_pb2  # type: ignore[import-untyped, unused-ignore]
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped, unused-ignore]

from services.runtime import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    Service,
    SwitchboardError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
    current_request_id,
    remaining_time,
)

if TYPE_CHECKING:
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

SERVICE_NAME = "switchboard.test.v1.RuntimeTest"
SECRET = "s3cret-detail-7781"

SAMPLE_ERRORS: dict[str, SwitchboardError] = {
    "Cancelled": Cancelled("the caller went away"),
    "Unknown": Unknown("something odd"),
    "InvalidArgument": InvalidArgument(
        "invalid user",
        violations=[("user.email", "must contain '@'"), ("user.name", "is required")],
        reason="USER_INVALID",
    ),
    "DeadlineExceeded": DeadlineExceeded("took too long"),
    "NotFound": NotFound.for_resource(
        "switchboard.user.v1.User", "users/42", reason="USER_NOT_FOUND"
    ),
    "AlreadyExists": AlreadyExists.for_resource("switchboard.product.v1.Product", "SKU-1"),
    "PermissionDenied": PermissionDenied("not yours", metadata={"owner": "users/7"}),
    "ResourceExhausted": ResourceExhausted("slow down", reason="RATE_LIMITED", retry_delay=1.5),
    "FailedPrecondition": FailedPrecondition(
        "stock is reserved",
        reason="STOCK_RESERVED",
        details=[
            error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type="STOCK", subject="SKU-1", description="reserved"
                    )
                ]
            )
        ],
    ),
    "Aborted": Aborted("etag mismatch", reason="ETAG_MISMATCH", retry_delay=0.25),
    "OutOfRange": OutOfRange("page past the end"),
    "Unimplemented": Unimplemented("not yet"),
    "Internal": Internal("invariant broken"),
    "Unavailable": Unavailable("registry down", retry_delay=2.0),
    "DataLoss": DataLoss("log truncated"),
    "Unauthenticated": Unauthenticated("token missing", reason="TOKEN_MISSING"),
}


class SecretBoomError(RuntimeError):
    """An unexpected server bug whose name and text must never reach a client."""


async def _echo(request: bytes, context: Context) -> bytes:
    return request


async def _raise(request: bytes, context: Context) -> bytes:
    raise SAMPLE_ERRORS[request.decode()]


async def _boom(request: bytes, context: Context) -> bytes:
    raise SecretBoomError(SECRET)


async def _abort(request: bytes, context: Context) -> bytes:
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, "handler said no")


async def _whoami(request: bytes, context: Context) -> bytes:
    return f"{current_request_id()}|{remaining_time()}".encode()


async def _own_trailers(request: bytes, context: Context) -> bytes:
    context.set_trailing_metadata((("x-own", "1"),))
    return b"ok"


async def _set_code(request: bytes, context: Context) -> bytes:
    context.set_code(grpc.StatusCode.FAILED_PRECONDITION)
    context.set_details("set by handler")
    return b""


async def _slow(request: bytes, context: Context) -> bytes:
    await asyncio.sleep(float(request.decode()))  # simulated work, not a wait in a test
    return b"done"


async def _hang(request: bytes, context: Context) -> AsyncIterator[bytes]:
    # Headers first, so a client can tell the handler has started.
    await context.send_initial_metadata((("x-started", "1"),))
    yield await _slow(request, context)


def _failure(request: bytes) -> Exception:
    name = request.decode()
    return SecretBoomError(SECRET) if name == "boom" else SAMPLE_ERRORS[name]


async def _gen_then_fail(request: bytes, context: Context) -> AsyncIterator[bytes]:
    yield b"1"
    yield b"2"
    raise _failure(request)


async def _write_then_fail(request: bytes, context: Context) -> None:
    await context.write(b"1")
    raise _failure(request)


async def _count(requests: AsyncIterator[bytes], context: Context) -> bytes:
    count = 0
    async for _ in requests:
        count += 1
    return str(count).encode()


async def _bidi(requests: AsyncIterator[bytes], context: Context) -> AsyncIterator[bytes]:
    async for request in requests:
        if request != b"ok":
            raise _failure(request)
        yield request


async def _typed(request: Any, context: Context) -> Any:
    return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


async def _typed_count(requests: AsyncIterator[Any], context: Context) -> Any:
    async for _ in requests:
        pass
    return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


def _typed_handler(
    factory: Callable[..., grpc.RpcMethodHandler[Any, Any]], behavior: Callable[..., Any]
) -> grpc.RpcMethodHandler[Any, Any]:
    return factory(
        behavior,
        request_deserializer=health_pb2.HealthCheckRequest.FromString,
        response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
    )


def _handlers() -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    unary = grpc.unary_unary_rpc_method_handler
    return {
        "Echo": unary(_echo),
        "Raise": unary(_raise),
        "Boom": unary(_boom),
        "Abort": unary(_abort),
        "WhoAmI": unary(_whoami),
        "OwnTrailers": unary(_own_trailers),
        "SetCode": unary(_set_code),
        "Slow": unary(_slow),
        "Hang": grpc.unary_stream_rpc_method_handler(_hang),
        "GenThenFail": grpc.unary_stream_rpc_method_handler(_gen_then_fail),
        "WriteThenFail": grpc.unary_stream_rpc_method_handler(_write_then_fail),
        "Count": grpc.stream_unary_rpc_method_handler(_count),
        "Bidi": grpc.stream_stream_rpc_method_handler(_bidi),
        "Typed": _typed_handler(unary, _typed),
        "TypedCount": _typed_handler(grpc.stream_unary_rpc_method_handler, _typed_count),
    }


def _add(servicer: Any, server: grpc.aio.Server) -> None:
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE_NAME, servicer)])


def build_service() -> Service:
    """The raw-bytes test service as a runtime ``Service``."""
    return Service(_handlers(), _add, SERVICE_NAME)


def method(name: str) -> str:
    """The full method path: ``method("Echo") == "/switchboard.test.v1.RuntimeTest/Echo"``."""
    return f"/{SERVICE_NAME}/{name}"


def unary(channel: grpc.aio.Channel, name: str) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
    """A raw-bytes unary callable for one of the test methods (or a full ``/path``)."""
    return channel.unary_unary(name if name.startswith("/") else method(name))


def server_stream(
    channel: grpc.aio.Channel, name: str
) -> grpc.aio.UnaryStreamMultiCallable[Any, Any]:
    """A raw-bytes server-streaming callable for one of the test methods."""
    return channel.unary_stream(method(name))


def client_stream(
    channel: grpc.aio.Channel, name: str
) -> grpc.aio.StreamUnaryMultiCallable[Any, Any]:
    """A raw-bytes client-streaming callable for one of the test methods."""
    return channel.stream_unary(method(name))


def bidi(channel: grpc.aio.Channel, name: str) -> grpc.aio.StreamStreamMultiCallable[Any, Any]:
    """A raw-bytes bidirectional callable for one of the test methods."""
    return channel.stream_stream(method(name))


async def eventually(predicate: Callable[[], bool], limit_s: float = 5.0) -> None:
    """Wait until ``predicate()`` holds, checking every 10 ms; fail after ``limit_s``.

    For effects with no event to await, such as a log line a server task writes.
    Example: ``await eventually(lambda: "code=OK" in caplog.text)``.
    """
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {limit_s} s")
        await asyncio.sleep(0.01)


MAX_RECEIVE = 64 * 1024
