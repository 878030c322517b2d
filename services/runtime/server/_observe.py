"""What the server wrapper records about each call: metrics, a span, the access-log line.

One :class:`MethodObserver` per method, built when the wrapper is (once per
method), holds that method's metric label children, so a call only
increments; with tracing off and metrics off a call costs two ``is None``
tests here plus its access-log line.

Example::

    observer = MethodObserver("/a.v1.S/Get", request_streaming=False,
                              response_streaming=False, metrics=True)
    span = observer.begin(context.invocation_metadata())
    ...
    observer.finish(grpc.StatusCode.OK, 0.0003, request_id, peer, span)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc

from services.runtime.logs import ACCESS_LOG
from services.runtime.metrics import ServerMethodMetrics
from services.runtime.tracing import CallSpan, end_span, start_server_span

__all__ = ["MethodObserver", "grpc_type"]


def grpc_type(request_streaming: bool, response_streaming: bool) -> str:
    """go-grpc-prometheus's ``grpc_type`` label: unary, client_stream, server_stream, bidi_stream.

    Example: ``grpc_type(False, True) == "server_stream"``.
    """
    if request_streaming:
        return "bidi_stream" if response_streaming else "client_stream"
    return "server_stream" if response_streaming else "unary"


class MethodObserver:
    """Metrics, span and access log of one method's calls."""

    __slots__ = ("_unary_request", "_unary_response", "method", "metrics")

    def __init__(
        self, method: str, *, request_streaming: bool, response_streaming: bool, metrics: bool
    ) -> None:
        self.method = method
        kind = grpc_type(request_streaming, response_streaming)
        self.metrics = ServerMethodMetrics.of(method, kind) if metrics else None
        self._unary_request = not request_streaming
        self._unary_response = not response_streaming

    def begin(self, metadata: Iterable[Any] | None) -> CallSpan | None:
        """A call started: count it (and its request if unary); the span if tracing is on."""
        m = self.metrics
        if m is not None:
            m.started.inc()
            if self._unary_request:
                m.received.inc()
        return start_server_span(self.method, metadata)

    def received(self) -> None:
        """One message of a request stream arrived."""
        if self.metrics is not None:
            self.metrics.received.inc()

    def sent(self) -> None:
        """One message of a response stream went out."""
        if self.metrics is not None:
            self.metrics.sent.inc()

    def succeeded(self) -> None:
        """The handler returned: a unary response is one message sent."""
        if self._unary_response and self.metrics is not None:
            self.metrics.sent.inc()

    def finish(
        self,
        code: grpc.StatusCode,
        seconds: float,
        request_id: str,
        peer: str,
        span: CallSpan | None,
    ) -> None:
        """The call ended with ``code``: handled count, latency, span status, access line."""
        if self.metrics is not None:
            self.metrics.handled(code, seconds)
        if span is not None:
            end_span(span, code)
        ACCESS_LOG.record(self.method, code, seconds * 1000, request_id, peer)
