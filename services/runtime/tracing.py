"""OpenTelemetry traces: one span per server call and per client call, W3C propagation.

Tracing is off unless the standard variables ask for it: ``OTEL_EXPORTER_OTLP_ENDPOINT``
(or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), or ``OTEL_TRACES_EXPORTER=otlp``; then
:func:`configure_tracing` starts an OTLP (gRPC) exporter with a batch processor,
and ``OTEL_SDK_DISABLED=true`` still wins. Off, no SDK object exists and the
per-call cost is one ``is None`` test on each side.

Spans follow OpenTelemetry's RPC conventions: name ``pkg.Service/Method``,
kind SERVER or CLIENT, attributes ``rpc.system=grpc``, ``rpc.service``,
``rpc.method``, ``rpc.grpc.status_code``. The client puts ``traceparent`` in
the call's metadata; the server continues that trace, and calls made while
handling it (a product's seller check) are its children.

Example::

    configure_tracing("product")          # reads OTEL_*; False when tracing stays off
    span = start_server_span("/a.v1.S/Get", metadata)
    ...
    end_span(span, grpc.StatusCode.OK)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from services.runtime.metrics import split_method

__all__ = [
    "configure_tracing",
    "current_trace_id",
    "enable_tracing",
    "end_span",
    "inject",
    "shutdown_tracing",
    "start_client_span",
    "start_server_span",
    "tracing_enabled",
]

_log = logging.getLogger("switchboard.tracing")
_TRACEPARENT = "traceparent"
_PROPAGATOR = TraceContextTextMapPropagator()
# Server spans are errors only for codes that mean the server failed (semantic conventions).
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


class _State:
    provider: TracerProvider | None = None
    tracer: trace.Tracer | None = None


def exporter_configured(environ: Mapping[str, str] | None = None) -> bool:
    """True when the ``OTEL_*`` variables ask for OTLP trace export.

    Example: ``exporter_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"})``.
    """
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    return bool(endpoint) or exporter == "otlp"


def configure_tracing(service_name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Start OTLP export if the ``OTEL_*`` variables say so; True when tracing is on.

    ``OTEL_SERVICE_NAME`` overrides ``service_name``. Example: ``configure_tracing("user")``.
    """
    if not exporter_configured(environ):
        return False
    # Imported here: the exporter pulls in its own gRPC stubs, which nobody needs otherwise.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    env = os.environ if environ is None else environ
    enable_tracing(env.get("OTEL_SERVICE_NAME") or service_name, OTLPSpanExporter())
    _log.info("tracing on: OTLP export to %s", _endpoint(env))
    return True


def enable_tracing(service_name: str, exporter: SpanExporter | None = None) -> TracerProvider:
    """Turn spans on for this process, exported by ``exporter`` (None: made, not exported).

    Example (bench: the cost of spans alone): ``enable_tracing("user")``.
    """
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    _State.provider = provider
    _State.tracer = provider.get_tracer("switchboard")
    return provider


def shutdown_tracing() -> None:
    """Flush and stop the exporter (at process exit); tracing is off afterwards."""
    provider, _State.provider, _State.tracer = _State.provider, None, None
    if provider is not None:
        provider.shutdown()


def tracing_enabled() -> bool:
    """True when spans are being made."""
    return _State.tracer is not None


def start_server_span(path: str, metadata: Iterable[Any] | None) -> Span | None:
    """A SERVER span for ``path``, child of the caller's ``traceparent``, made current.

    None when tracing is off. grpc.aio runs each call in its own task (its own
    context), so the span stays current for the rest of the call without a reset.
    """
    tracer = _State.tracer
    if tracer is None:
        return None
    carrier = {k: v for k, v in metadata or () if k == _TRACEPARENT or k == "tracestate"}
    parent = _PROPAGATOR.extract(carrier) if carrier else None
    span = tracer.start_span(
        path.lstrip("/"), context=parent, kind=SpanKind.SERVER, attributes=_attributes(path)
    )
    otel_context.attach(trace.set_span_in_context(span))
    return span


def start_client_span(path: str) -> Span | None:
    """A CLIENT span for ``path``, child of the current span; None when tracing is off."""
    tracer = _State.tracer
    if tracer is None:
        return None
    return tracer.start_span(path.lstrip("/"), kind=SpanKind.CLIENT, attributes=_attributes(path))


def inject(span: Span, metadata: list[tuple[str, str]]) -> None:
    """Append ``span``'s ``traceparent`` (and ``tracestate``) to ``metadata``."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    metadata.extend(carrier.items())


def end_span(span: Span, code: grpc.StatusCode, *, server: bool = True) -> None:
    """Set the gRPC status on ``span`` and end it."""
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code is not grpc.StatusCode.OK and (not server or code in _SERVER_ERRORS):
        span.set_status(Status(StatusCode.ERROR, code.name))
    span.end()


def current_trace_id() -> str | None:
    """The current span's trace id (32 hex digits), or None outside a traced call."""
    if _State.tracer is None:
        return None
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def _attributes(path: str) -> dict[str, str]:
    service, method = split_method(path)
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}


def _endpoint(env: Mapping[str, str]) -> str:
    return (
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or "the default endpoint"
    )
