"""Answers serialized once and sent as bytes: the registry's hot paths skip protobuf work.

A Resolve answer is the same for every caller until the service changes, a
Watch event is the same for each of its watchers, and a renewal's answer is the
same for every renewal of a lease. The servicer keeps those answers as bytes;
:func:`add_to_server` registers the generated RegistryService handlers with a
serializer that passes ``bytes`` through untouched (and still serializes any
message), for the methods whose behaviour it replaces with a bytes-answering one.
Everything else about the handler (its shape, request deserializer, the runtime
wrapper with auth, metrics, tracing and deadlines around it) stays as generated.

Example::

    add_to_server(add_RegistryServiceServicer_to_server, servicer, server,
                  {"Resolve": servicer.resolve_bytes})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import grpc

__all__ = ["AnswerCache", "add_to_server", "as_bytes"]


class _Message(Protocol):
    def SerializeToString(self) -> bytes: ...  # noqa: N802 (protobuf's name)


def as_bytes(answer: bytes | _Message) -> bytes:
    """The wire form of an answer: bytes as they are, a message serialized.

    Example: ``as_bytes(b"\\x08\\x01") == b"\\x08\\x01"``.
    """
    if isinstance(answer, bytes):
        return answer
    return answer.SerializeToString()


_FACTORIES = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


class _Capture:
    """Stands in for a server to collect what a generated ``add_*_to_server`` registers."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """Ignored: the registered handlers below are rebuilt into a generic one."""

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        self.service, self.handlers = service, dict(handlers)


def add_to_server(
    generated: Callable[[Any, Any], None],
    servicer: Any,
    server: Any,
    byte_behaviours: Mapping[str, Callable[..., Any]],
) -> None:
    """Register ``servicer`` as ``generated`` would, with ``byte_behaviours`` (method name ->
    behaviour answering bytes or messages) in place of those methods' own behaviours.

    Example: ``add_to_server(add_FooServicer_to_server, s, server, {"Get": s.get_bytes})``.
    """
    capture = _Capture()
    generated(servicer, capture)
    handlers = capture.handlers
    for name, behaviour in byte_behaviours.items():
        handler = handlers[name]
        shape = (handler.request_streaming, handler.response_streaming)
        handlers[name] = _FACTORIES[shape](
            behaviour,
            request_deserializer=handler.request_deserializer,
            response_serializer=as_bytes,
        )
    generic = grpc.method_handlers_generic_handler(capture.service, handlers)
    server.add_generic_rpc_handlers((generic,))
    server.add_registered_method_handlers(capture.service, handlers)


class AnswerCache:
    """Serialized answers by the identity of what they were built from, newest kept.

    Keyed by object identity, not equality: the store hands out the same
    object (a Resolution, an event pushed to every watcher) while it stands
    for the same state. The cache holds the object itself, so its identity
    cannot be reused by another while the entry lives. ``size`` bounds it.

    Example::

        cache = AnswerCache(size=64)
        data = cache.get(event, lambda: WatchResponse(event=event).SerializeToString())
    """

    __slots__ = ("_entries", "_size")

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: dict[int, tuple[object, bytes]] = {}

    def get(self, source: object, build: Callable[[], bytes]) -> bytes:
        """The bytes built from ``source`` (built now if not kept)."""
        entry = self._entries.get(id(source))
        if entry is not None and entry[0] is source:
            return entry[1]
        data = build()
        if len(self._entries) >= self._size:
            del self._entries[next(iter(self._entries))]  # the oldest (dicts keep order)
        self._entries[id(source)] = (source, data)
        return data
