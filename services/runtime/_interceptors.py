"""Server interceptors: request id, access log, error mapping, request decoding.

grpc.aio gives an interceptor only the method name and metadata; to see the
call's context or catch the handler's exception it must wrap the handler that
``continuation`` returns. :func:`wrap_handler` does that once for all four
handler shapes, so each interceptor is just an async context manager run
around the call.

Order matters (first = outermost)::

    RequestIdInterceptor        sets the request id / deadline contextvars, echoes the id
      AccessLogInterceptor      one INFO line per call with the final status code
        ErrorMappingInterceptor SwitchboardError -> status + details; anything else -> INTERNAL
          RequestDecodingInterceptor  undecodable request -> INVALID_ARGUMENT

Example::

    server = grpc.aio.server(interceptors=default_interceptors())
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

import grpc
import grpc.aio

from services.runtime._context import (
    REQUEST_ID_KEY,
    bind_call,
    current_request_id,
    new_request_id,
)
from services.runtime.errors import Internal, InvalidArgument, SwitchboardError

if TYPE_CHECKING:
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    Continuation: TypeAlias = Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]

__all__ = [
    "AccessLogInterceptor",
    "ErrorMappingInterceptor",
    "RequestDecodingInterceptor",
    "RequestIdInterceptor",
    "default_interceptors",
    "wrap_handler",
]

access_log = logging.getLogger("switchboard.access")
_log = logging.getLogger("switchboard.server")

Around = Callable[["Context"], AbstractAsyncContextManager[None]]
RequestHook = Callable[[Any], Any]

_SHAPES = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}

# A request id comes from the caller and ends up in logs: keep it short and plain.
_MAX_REQUEST_ID = 128


def default_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """The interceptors every Switchboard server runs, outermost first.

    Example: ``grpc.aio.server(interceptors=default_interceptors())``.
    """
    return [
        RequestIdInterceptor(),
        AccessLogInterceptor(),
        ErrorMappingInterceptor(),
        RequestDecodingInterceptor(),
    ]


# --- handler wrapping ---------------------------------------------------------------


def wrap_handler(
    handler: Handler,
    around: Around | None = None,
    *,
    on_request: RequestHook | None = None,
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> Handler:
    """A handler of the same shape that runs ``around(context)`` around the behaviour.

    ``on_request`` sees (and may replace) each request message before the
    behaviour does; ``request_deserializer`` replaces the handler's own.
    Responses of streaming handlers pass through one by one, whether the
    behaviour is an async generator or writes with ``context.write``.

    Example::

        wrap_handler(handler, lambda ctx: timer(ctx))   # timer: an async context manager
    """
    name, factory = _SHAPES[(handler.request_streaming, handler.response_streaming)]
    behavior: Callable[..., Any] = getattr(handler, name)
    enter = around or (lambda _context: nullcontext())
    prepare = _request_preparer(handler.request_streaming, on_request)
    wrapped: Callable[..., Any]
    if handler.response_streaming:
        wrapped = _wrap_streaming(behavior, enter, prepare)
    else:
        wrapped = _wrap_unary(behavior, enter, prepare)
    return factory(
        wrapped,
        request_deserializer=request_deserializer or handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _wrap_unary(
    behavior: Callable[..., Any], around: Around, prepare: RequestHook
) -> Callable[..., Awaitable[Any]]:
    """A coroutine behaviour (grpc.aio checks the function kind, so it must be one)."""

    async def unary_response(request: Any, context: Context) -> Any:
        async with around(context):
            result = behavior(prepare(request), context)
            return await result if inspect.isawaitable(result) else result

    return unary_response


def _wrap_streaming(
    behavior: Callable[..., Any], around: Around, prepare: RequestHook
) -> Callable[..., AsyncIterator[Any]]:
    """An async-generator behaviour that relays whatever the inner one produces."""

    async def stream_response(request: Any, context: Context) -> AsyncIterator[Any]:
        async with around(context):
            async for response in _responses(behavior(prepare(request), context)):
                yield response

    return stream_response


async def _responses(result: Any) -> AsyncIterator[Any]:
    """Responses of a streaming behaviour, whatever its kind.

    A coroutine behaviour writes with ``context.write`` and yields nothing
    here; a plain iterator runs on the event loop, so servicers should be async.
    """
    if hasattr(result, "__aiter__"):
        async for response in result:
            yield response
    elif inspect.isawaitable(result):
        await result
    else:
        for response in result:
            yield response


def _request_preparer(streaming: bool, on_request: RequestHook | None) -> RequestHook:
    """Apply ``on_request`` to the single request or to each message of a request stream."""
    if on_request is None:
        return lambda request: request
    if not streaming:
        return on_request

    async def each(requests: Any) -> AsyncIterator[Any]:
        async for request in requests:
            yield on_request(request)

    return each


class _WrappingInterceptor(grpc.aio.ServerInterceptor):
    """Base: wraps every found handler with ``self.around(details, context)``."""

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            self.not_found(handler_call_details)
            return None
        return wrap_handler(handler, lambda context: self.around(handler_call_details, context))

    def around(
        self, details: grpc.HandlerCallDetails, context: Context
    ) -> AbstractAsyncContextManager[None]:
        raise NotImplementedError

    def not_found(self, details: grpc.HandlerCallDetails) -> None:
        """Called for a method no servicer has (the server answers UNIMPLEMENTED)."""


# --- request id ---------------------------------------------------------------------


class RequestIdInterceptor(_WrappingInterceptor):
    """Bind the caller's ``x-request-id`` (or a new one) and deadline; echo the id back.

    The id goes back in the trailing metadata, also on errors (the error
    mapper keeps trailers that were set before it aborts).
    """

    def around(
        self, details: grpc.HandlerCallDetails, context: Context
    ) -> AbstractAsyncContextManager[None]:
        return _request_id_scope(details, context)


@asynccontextmanager
async def _request_id_scope(
    details: grpc.HandlerCallDetails, context: Context
) -> AsyncIterator[None]:
    request_id = incoming_request_id(details.invocation_metadata) or new_request_id()
    bind_call(request_id, context.time_remaining())
    context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
    yield
    # Runs only on success: a handler that set its own trailers dropped ours.
    _keep_request_id(context, request_id)


def incoming_request_id(metadata: Iterable[Any] | None) -> str | None:
    """The caller's request id, if it sent a usable one.

    Example: ``incoming_request_id([("x-request-id", "abc")]) == "abc"``.
    """
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY and isinstance(value, str):
            return value if _plain_id(value) else None
    return None


def _plain_id(value: str) -> bool:
    """Printable ASCII without spaces, not too long: safe to put in a log line."""
    return (
        0 < len(value) <= _MAX_REQUEST_ID
        and value.isascii()
        and value.isprintable()
        and (" " not in value)
    )


def _keep_request_id(context: Context, request_id: str) -> None:
    trailers = tuple(context.trailing_metadata() or ())
    if not any(key == REQUEST_ID_KEY for key, _ in trailers):
        context.set_trailing_metadata((*trailers, (REQUEST_ID_KEY, request_id)))


# --- access log ---------------------------------------------------------------------


class AccessLogInterceptor(_WrappingInterceptor):
    """One INFO line per call on ``switchboard.access``.

    Example line: ``method=/switchboard.user.v1.UserService/GetUser code=NOT_FOUND
    duration_ms=1.9 request_id=5f0c... peer=ipv4:127.0.0.1:53422``.
    """

    def around(
        self, details: grpc.HandlerCallDetails, context: Context
    ) -> AbstractAsyncContextManager[None]:
        return _access_log_scope(details, context)

    def not_found(self, details: grpc.HandlerCallDetails) -> None:
        request_id = incoming_request_id(details.invocation_metadata) or "-"
        _log_call(details.method, grpc.StatusCode.UNIMPLEMENTED, 0.0, request_id, "-")


@asynccontextmanager
async def _access_log_scope(
    details: grpc.HandlerCallDetails, context: Context
) -> AsyncIterator[None]:
    start = time.perf_counter()
    peer = context.peer()  # read now: once the deadline passes it reads as ""
    code: grpc.StatusCode | None = None
    try:
        yield
    except asyncio.CancelledError:
        code = _cancelled_code(context)
        raise
    except BaseException:
        # An abort has set the code; anything else got past the error mapper.
        code = context.code() or grpc.StatusCode.UNKNOWN
        raise
    finally:
        final = code or context.code() or grpc.StatusCode.OK
        elapsed_ms = (time.perf_counter() - start) * 1000
        _log_call(details.method, final, elapsed_ms, current_request_id() or "-", peer)


def _cancelled_code(context: Context) -> grpc.StatusCode:
    """grpc.aio cancels the handler both when the caller cancels and when the deadline passes."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


def _log_call(
    method: str, code: grpc.StatusCode, elapsed_ms: float, request_id: str, peer: str
) -> None:
    access_log.info(
        "method=%s code=%s duration_ms=%.1f request_id=%s peer=%s",
        method,
        code.name,
        elapsed_ms,
        request_id,
        peer,
        extra={
            "grpc_method": method,
            "grpc_code": code.name,
            "duration_ms": elapsed_ms,
            "request_id": request_id,
            "peer": peer,
        },
    )


# --- error mapping ------------------------------------------------------------------


class ErrorMappingInterceptor(_WrappingInterceptor):
    """The server's one error boundary.

    ``SwitchboardError`` → ``abort_with_status`` with its google.rpc details;
    any other exception → INTERNAL "internal error; request id <id>", with the
    traceback in the server log only. An abort the handler made itself, and
    cancellation, pass through untouched.
    """

    def around(
        self, details: grpc.HandlerCallDetails, context: Context
    ) -> AbstractAsyncContextManager[None]:
        return _error_scope(details, context)


@asynccontextmanager
async def _error_scope(details: grpc.HandlerCallDetails, context: Context) -> AsyncIterator[None]:
    try:
        yield
    except grpc.aio.AbortError:
        raise
    except SwitchboardError as err:
        await abort_with_error(context, err)
    except Exception:
        request_id = current_request_id() or "-"
        _log.exception("unhandled exception in %s (request id %s)", details.method, request_id)
        internal = Internal(
            f"internal error; request id {request_id}", metadata={"request_id": request_id}
        )
        await abort_with_error(context, internal)


@dataclass(frozen=True)
class _Status(grpc.Status):
    """A ``grpc.Status`` whose trailers we can extend."""

    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


async def abort_with_error(context: Context, err: SwitchboardError) -> NoReturn:
    """Abort the call with ``err``'s status, keeping trailers set earlier (the request id).

    Example: ``await abort_with_error(context, NotFound("no such user"))``.
    """
    status = err.to_status()
    earlier = tuple((key, value) for key, value in context.trailing_metadata() or ())
    await context.abort_with_status(
        _Status(status.code, status.details, (*earlier, *status.trailing_metadata))
    )


# --- request decoding ---------------------------------------------------------------


class RequestDecodingInterceptor(grpc.aio.ServerInterceptor):
    """Answer an undecodable request with INVALID_ARGUMENT instead of grpc.aio's UNKNOWN.

    Left alone, grpc.aio answers garbage bytes with UNKNOWN and the details
    "Unexpected <class 'google.protobuf.message.DecodeError'>: ...", before
    any interceptor wrapper runs. Here the deserializer returns a marker
    instead of raising, and the wrapped behaviour turns the marker into
    :class:`InvalidArgument` for the error mapper. Handlers that read with
    ``context.read()`` instead of the request iterator get the marker as is.
    """

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        return wrap_handler(
            handler,
            on_request=_reject_undecodable,
            request_deserializer=_safe_deserializer(handler.request_deserializer),
        )


@dataclass(frozen=True)
class _Undecodable:
    """Stands in for a request message that failed to parse."""

    type_name: str


def _safe_deserializer(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    type_name = _message_type_name(deserializer)

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as err:
            # DEBUG: a client can send garbage at will; the access log has the call.
            _log.debug("undecodable %s request: %s", type_name, err)
            return _Undecodable(type_name)

    return deserialize


def _message_type_name(deserializer: Callable[[bytes], Any]) -> str:
    """``HealthCheckRequest.FromString`` → ``grpc.health.v1.HealthCheckRequest``."""
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "request"))


def _reject_undecodable(request: Any) -> Any:
    if isinstance(request, _Undecodable):
        raise InvalidArgument(
            f"request is not a valid {request.type_name} message", reason="MALFORMED_REQUEST"
        )
    return request
