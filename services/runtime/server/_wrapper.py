"""The server's per-call concerns: request id, access log, error mapping, request decoding.

grpc.aio gives an interceptor only the method name and metadata; to see the
call's context or catch the handler's exception it must wrap the handler that
``continuation`` returns. One interceptor does that, once per method (the
wrapped handler is cached), and the wrapper runs the four concerns in order:

    request id       bind the caller's ``x-request-id`` (or a new one) and the
                     deadline to contextvars; echo the id in the trailers
    observation      metrics, a span and the access-log line per call
                     (:mod:`services.runtime.server._observe`)
    error mapping    SwitchboardError -> status + google.rpc details;
                     anything else -> INTERNAL, traceback in the log only
    request decoding an undecodable request -> INVALID_ARGUMENT

Before any of them, a call whose request metadata is over the configured limit
is refused with RESOURCE_EXHAUSTED (see :class:`ServerCallInterceptor`). With
auth on, each method's gate (:mod:`services.runtime.auth`, chosen once per
method) admits or refuses the caller before the handler runs or the request is
looked at, and writes the audit line when the call ends.

Why one wrapper and not four interceptors: grpc.aio runs every interceptor and
rebuilds the handler on every call; four stacked ones with async context
managers cost ~60-90 µs of server CPU per call, as much as the RPC itself.

Example::

    server = grpc.aio.server(interceptors=default_interceptors())
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

import grpc
import grpc.aio

from services.runtime.auth import Authorizer, MethodGate
from services.runtime.context import REQUEST_ID_KEY, bind_call, new_request_id
from services.runtime.errors import (
    Internal,
    InvalidArgument,
    ResourceExhausted,
    SwitchboardError,
)
from services.runtime.logs import ACCESS_LOG
from services.runtime.server._observe import MethodObserver
from services.runtime.tracing import current_trace_id

if TYPE_CHECKING:
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    Continuation: TypeAlias = Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]

__all__ = [
    "ServerCallInterceptor",
    "abort_with_error",
    "default_interceptors",
    "incoming_request_id",
    "metadata_size",
]

_log = logging.getLogger("switchboard.server")

_SHAPES = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}

# A request id comes from the caller and ends up in logs: keep it short and plain.
_MAX_REQUEST_ID = 128


# RFC 9113 section 6.5.2: a header field counts as its name, its value and 32 octets.
_HEADER_OVERHEAD = 32


def default_interceptors(
    max_metadata_bytes: int | None = None,
    authorizer: Authorizer | None = None,
    *,
    metrics: bool = True,
) -> list[grpc.aio.ServerInterceptor]:
    """The interceptors every Switchboard server runs.

    ``max_metadata_bytes`` refuses calls with more request metadata (None: no check);
    ``authorizer`` checks every caller (None: auth off); ``metrics`` False records no
    Prometheus metrics (no HTTP side port to serve them).
    Example: ``grpc.aio.server(interceptors=default_interceptors(16 * 1024))``.
    """
    return [ServerCallInterceptor(max_metadata_bytes, authorizer, metrics=metrics)]


class ServerCallInterceptor(grpc.aio.ServerInterceptor):
    """Wraps each method's handler once with :class:`_Call` and reuses the wrapper.

    A call whose request metadata exceeds ``max_metadata_bytes`` gets a handler
    that answers RESOURCE_EXHAUSTED instead: gRPC core applies its own limit
    (``grpc.max_metadata_size``) only once the client has acknowledged the
    server's SETTINGS, so headers sent in a client's first flight (or by one
    that never acknowledges) are held to core's 16 MiB default and would
    otherwise reach the servicer.
    """

    def __init__(
        self,
        max_metadata_bytes: int | None = None,
        authorizer: Authorizer | None = None,
        *,
        metrics: bool = True,
    ) -> None:
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}
        self._max_metadata = max_metadata_bytes
        self._authorizer = authorizer
        self._metrics = metrics

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None:
            request_id = incoming_request_id(handler_call_details.invocation_metadata) or "-"
            ACCESS_LOG.record(method, grpc.StatusCode.UNIMPLEMENTED, 0.0, request_id, "-")
            return None
        if self._max_metadata is not None:
            size = metadata_size(handler_call_details.invocation_metadata)
            if size > self._max_metadata:
                refusing = _refusing(handler, _too_large(size, self._max_metadata))
                return _wrap(method, refusing, None, self._metrics)
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        gate = self._authorizer.gate_for(method) if self._authorizer is not None else None
        wrapped = _wrap(method, handler, gate, self._metrics)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


# --- handler wrapping ---------------------------------------------------------------


def _wrap(
    method: str, handler: Handler, gate: MethodGate | None = None, metrics: bool = True
) -> Handler:
    """A handler of the same shape whose behaviour runs inside a :class:`_Call`."""
    streams = (handler.request_streaming, handler.response_streaming)
    name, factory = _SHAPES[streams]
    behavior: Callable[..., Any] = getattr(handler, name)
    observer = MethodObserver(
        method, request_streaming=streams[0], response_streaming=streams[1], metrics=metrics
    )
    check: Callable[[Any], Any] = _check_one
    if handler.request_streaming:
        check = functools.partial(_check_each, observer=observer)
    wrap = _wrap_streaming if handler.response_streaming else _wrap_unary
    deserializer = handler.request_deserializer
    return factory(
        wrap(observer, behavior, check, gate),
        request_deserializer=deserializer and _safe_deserializer(deserializer),
        response_serializer=handler.response_serializer,
    )


def _wrap_unary(
    observer: MethodObserver,
    behavior: Callable[..., Any],
    check: Callable[[Any], Any],
    gate: MethodGate | None,
) -> Callable[..., Awaitable[Any]]:
    """A coroutine behaviour (grpc.aio checks the function kind, so it must be one)."""

    coroutine = inspect.iscoroutinefunction(behavior)  # decided once, not per call

    async def unary_response(request: Any, context: Context) -> Any:
        call = _Call(observer, context)
        response = None
        try:
            if gate is not None:
                gate.admit(context)
            if coroutine:
                response = await behavior(check(request), context)
            else:
                result = behavior(check(request), context)
                response = await result if inspect.isawaitable(result) else result
        except BaseException as exc:
            error = call.fail(exc)
            _record(call, gate, (request, response))  # before the caller can see the status
            if error is not None:
                await abort_with_error(context, error)
            raise
        _record(call, gate, (request, response))
        call.succeeded()
        return response

    return unary_response


def _wrap_streaming(
    observer: MethodObserver,
    behavior: Callable[..., Any],
    check: Callable[[Any], Any],
    gate: MethodGate | None,
) -> Callable[..., AsyncIterator[Any]]:
    """An async-generator behaviour that relays whatever the inner one produces."""

    async def stream_response(request: Any, context: Context) -> AsyncIterator[Any]:
        call = _Call(observer, context)
        try:
            if gate is not None:
                gate.admit(context)
            result = behavior(check(request), context)
            # An async generator (the usual servicer) is relayed without another layer.
            responses = result if hasattr(result, "__aiter__") else _responses(result)
            async for response in responses:
                observer.sent()
                yield response
        except BaseException as exc:
            error = call.fail(exc)
            _record(call, gate, (request,))  # before the caller can see the status
            if error is not None:
                await abort_with_error(context, error)
            raise
        _record(call, gate, (request,))
        call.succeeded()

    return stream_response


def _record(call: _Call, gate: MethodGate | None, messages: tuple[Any, ...]) -> None:
    """The call's metrics, span end and access-log line, and its audit line with auth on."""
    call.log()
    if gate is not None:
        gate.audit(call.final_code(), call.request_id, messages, call.context)


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


class _Call:
    """One call's request id, timing and final code: the concerns in one place each."""

    __slots__ = ("code", "context", "method", "observer", "peer", "request_id", "span", "start")

    def __init__(self, observer: MethodObserver, context: Context) -> None:
        self.observer = observer
        self.method = observer.method
        self.context = context
        self.start = time.perf_counter()
        self.peer = context.peer()  # read now: once the deadline passes it reads as ""
        self.code: grpc.StatusCode | None = None
        metadata = context.invocation_metadata()
        self.request_id = incoming_request_id(metadata) or new_request_id()
        bind_call(self.request_id, context.time_remaining())
        context.set_trailing_metadata(((REQUEST_ID_KEY, self.request_id),))
        self.span = observer.begin(metadata)

    def succeeded(self) -> None:
        """Put the request id back if the handler replaced the trailers."""
        self.observer.succeeded()
        trailers = tuple(self.context.trailing_metadata() or ())
        if not any(key == REQUEST_ID_KEY for key, _ in trailers):
            self.context.set_trailing_metadata((*trailers, (REQUEST_ID_KEY, self.request_id)))

    def fail(self, exc: BaseException) -> SwitchboardError | None:
        """Record the final code; return the error to abort with (None: nothing to send).

        The caller records the call, then aborts: metrics, the access log and the audit
        line are written before the client can see the status, as on success.
        """
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            self.code = _cancelled_code(self.context)
        elif isinstance(exc, grpc.aio.AbortError):
            self.code = self.context.code() or grpc.StatusCode.UNKNOWN
        elif isinstance(exc, SwitchboardError):
            self.code = exc.code
            return exc
        elif isinstance(exc, Exception):
            self.code = grpc.StatusCode.INTERNAL
            return self._internal_error()
        else:
            self.code = grpc.StatusCode.UNKNOWN
        return None

    def _internal_error(self) -> Internal:
        """INTERNAL naming the request (and trace) id; the traceback goes to the log only."""
        rid = self.request_id
        _log.exception("unhandled exception in %s (request id %s)", self.method, rid)
        details = {"request_id": rid}
        trace_id = current_trace_id()
        if trace_id is not None:
            details["trace_id"] = trace_id
        return Internal(f"internal error; request id {rid}", metadata=details)

    def final_code(self) -> grpc.StatusCode:
        """The code the client will see."""
        return self.code or self.context.code() or grpc.StatusCode.OK

    def log(self) -> None:
        """Metrics, span end and the access-log line, with the code the client will see."""
        code = self.final_code()
        elapsed = time.perf_counter() - self.start
        self.observer.finish(code, elapsed, self.request_id, self.peer, self.span)


# --- metadata limit -----------------------------------------------------------------


def metadata_size(metadata: Iterable[Any] | None) -> int:
    """Request metadata size as HTTP/2 counts it: name + value + 32 octets per entry.

    Example: ``metadata_size([("a", "bc")]) == 35``.
    """
    return sum(len(key) + len(value) + _HEADER_OVERHEAD for key, value in metadata or ())


def _too_large(size: int, limit: int) -> ResourceExhausted:
    return ResourceExhausted(
        f"request metadata of {size} bytes is over the limit of {limit} bytes",
        reason="METADATA_TOO_LARGE",
        metadata={"limit": str(limit)},
    )


def _refusing(handler: Handler, err: SwitchboardError) -> Handler:
    """A handler of ``handler``'s shape whose behaviour only raises ``err``."""

    async def refuse(request: Any, context: Context) -> NoReturn:
        raise err

    _name, factory = _SHAPES[(handler.request_streaming, handler.response_streaming)]
    return factory(
        refuse,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


# --- request id ---------------------------------------------------------------------


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


# --- access log ---------------------------------------------------------------------


def _cancelled_code(context: Context) -> grpc.StatusCode:
    """grpc.aio cancels the handler both when the caller cancels and when the deadline passes.

    Only the server's own deadline reads as DEADLINE_EXCEEDED here: a caller whose
    deadline fires first on its side resets the stream with CANCEL, the same frame as
    an explicit cancel, and that is logged as CANCELLED (the caller sees its own code).
    """
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


# --- error mapping ------------------------------------------------------------------


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


def _check_one(request: Any) -> Any:
    """The request, or InvalidArgument if it did not decode."""
    if isinstance(request, _Undecodable):
        raise InvalidArgument(
            f"request is not a valid {request.type_name} message", reason="MALFORMED_REQUEST"
        )
    return request


async def _check_each(
    requests: AsyncIterator[Any], observer: MethodObserver | None = None
) -> AsyncIterator[Any]:
    """Each request of a stream, checked by :func:`_check_one` (and counted)."""
    async for request in requests:
        if observer is not None:
            observer.received()
        yield _check_one(request)
