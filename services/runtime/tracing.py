"""OpenTelemetry traces: one span per server call and per client call, W3C propagation.

Tracing is off unless the standard variables ask for it (``OTEL_SDK_DISABLED=true``
always wins):

* ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) or
  ``OTEL_TRACES_EXPORTER=otlp``: spans exported by OTLP/gRPC with a batch processor;
* ``OTEL_TRACES_EXPORTER=none``: spans made and propagated (trace ids in logs and
  in ``traceparent``), exported nowhere;
* nothing set: off. No SDK object exists and the per-call cost is one
  ``is None`` test on each side.

Spans follow OpenTelemetry's RPC conventions: name ``pkg.Service/Method``,
kind SERVER or CLIENT, attributes ``rpc.system=grpc``, ``rpc.service``,
``rpc.method``, ``rpc.grpc.status_code``. The client puts ``traceparent`` in
the call's metadata; the server continues that trace, and calls made while
handling it (a downstream check, say) are its children.

Example::

    configure_tracing("greeter")          # reads OTEL_*; False when tracing stays off
    span = start_server_span("/a.v1.S/Get", metadata)
    ...
    end_span(span, grpc.StatusCode.OK)
"""

from __future__ import annotations

import contextvars
import logging
import os
import random
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, TypeAlias

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from services.runtime.metrics import split_method

__all__ = [
    "CallSpan",
    "LightSpan",
    "configure_tracing",
    "enable_propagation",
    "current_trace_id",
    "enable_tracing",
    "end_span",
    "inject",
    "shutdown_tracing",
    "start_client_span",
    "start_server_span",
    "tracing_enabled",
    "tracing_mode",
]

_log = logging.getLogger("switchboard.tracing")
_TRACEPARENT = "traceparent"
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
    on = False
    provider: TracerProvider | None = None
    tracer: trace.Tracer | None = None


_SAMPLED = 0x01
_random_bits = random.getrandbits


def tracing_mode(environ: Mapping[str, str] | None = None) -> str:
    """What the ``OTEL_*`` variables ask for: ``"otlp"``, ``"spans"`` (no exporter) or ``"off"``.

    Example: ``tracing_mode({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}) == "otlp"``.
    """
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "off"
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return "spans"
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    return "otlp" if endpoint or exporter == "otlp" else "off"


def configure_tracing(service_name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Turn tracing on as the ``OTEL_*`` variables say (see :func:`tracing_mode`); True if on.

    ``OTEL_SERVICE_NAME`` overrides ``service_name``. Example: ``configure_tracing("greeter")``.
    """
    mode = tracing_mode(environ)
    if mode == "off":
        return False
    if mode == "spans":
        enable_propagation()
        _log.info("tracing on: trace context propagated, not exported (OTEL_TRACES_EXPORTER=none)")
        return True
    # Imported here: the exporter pulls in its own gRPC stubs, which nobody needs otherwise.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    env = os.environ if environ is None else environ
    enable_tracing(env.get("OTEL_SERVICE_NAME") or service_name, OTLPSpanExporter())
    _log.info("tracing on: OTLP export to %s", _endpoint(env))
    return True


def enable_tracing(service_name: str, exporter: SpanExporter | None = None) -> TracerProvider:
    """Record spans with the OpenTelemetry SDK, exported by ``exporter`` (None: add your own
    span processor to the returned provider). Example: ``enable_tracing("greeter", exporter)``.
    """
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    _State.on = True
    _State.provider = provider
    _State.tracer = provider.get_tracer("switchboard")
    return provider


def enable_propagation() -> None:
    """Trace context only: ids made and propagated (``traceparent``, logs), no span recorded.

    With no exporter a recorded span has nowhere to go, so the SDK (~20 µs per
    span) is not used at all. Example: ``enable_propagation()``.
    """
    shutdown_tracing()
    _State.on = True


def shutdown_tracing() -> None:
    """Flush and stop the exporter (at process exit); tracing is off afterwards."""
    provider, _State.provider, _State.tracer = _State.provider, None, None
    _State.on = False
    if provider is not None:
        provider.shutdown()


def tracing_enabled() -> bool:
    """True when trace context is being made (and, with the SDK, spans recorded)."""
    return _State.on


class LightSpan(NamedTuple):
    """A span as propagation sees it: ids and flags, nothing recorded (see
    :func:`enable_propagation`)."""

    trace_id: int
    span_id: int
    flags: int


CallSpan: TypeAlias = "Span | LightSpan"
"""What the start functions return: an SDK span, or a :class:`LightSpan`."""

_current: contextvars.ContextVar[LightSpan | None] = contextvars.ContextVar(
    "switchboard_span", default=None
)


def start_server_span(path: str, metadata: Iterable[Any] | None) -> CallSpan | None:
    """A SERVER span for ``path``, child of the caller's ``traceparent``, made current.

    None when tracing is off. grpc.aio runs each call in its own task (its own
    context), so the span stays current for the rest of the call without a reset.
    """
    if not _State.on:
        return None
    parent = None
    for key, value in metadata or ():
        if key == _TRACEPARENT:
            parent = _parse_traceparent(value)
            break
    tracer = _State.tracer
    if tracer is None:
        light = _child(parent)
        _current.set(light)
        return light
    context = None if parent is None else trace.set_span_in_context(_remote(parent))
    span = tracer.start_span(
        path.lstrip("/"), context=context, kind=SpanKind.SERVER, attributes=_attributes(path)
    )
    otel_context.attach(trace.set_span_in_context(span))
    _current.set(_light(span))
    return span


def start_client_span(path: str) -> CallSpan | None:
    """A CLIENT span for ``path``, child of the current span; None when tracing is off."""
    if not _State.on:
        return None
    tracer = _State.tracer
    if tracer is None:
        return _child(_current.get())
    return tracer.start_span(path.lstrip("/"), kind=SpanKind.CLIENT, attributes=_attributes(path))


def inject(span: CallSpan, metadata: list[tuple[str, str]]) -> None:
    """Append ``span``'s W3C ``traceparent`` to ``metadata``."""
    ids = span if isinstance(span, LightSpan) else _light(span)
    metadata.append(
        (_TRACEPARENT, f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{ids.flags & 0xFF:02x}")
    )


def end_span(span: CallSpan, code: grpc.StatusCode, *, server: bool = True) -> None:
    """Set the gRPC status on ``span`` and end it (nothing to do for a :class:`LightSpan`)."""
    if isinstance(span, LightSpan):
        return
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code is not grpc.StatusCode.OK and (not server or code in _SERVER_ERRORS):
        span.set_status(Status(StatusCode.ERROR, code.name))
    span.end()


def current_trace_id() -> str | None:
    """The handled call's trace id (32 hex digits), or None outside a traced call."""
    span = _current.get()
    return None if span is None else format(span.trace_id, "032x")


def _parse_traceparent(value: str) -> LightSpan | None:
    """``00-<32 hex>-<16 hex>-<2 hex>`` → ids and flags; None when malformed (a new trace)."""
    parts = value.split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or parts[0] == "ff":
        return None
    try:
        parsed = LightSpan(int(parts[1], 16), int(parts[2], 16), int(parts[3][:2], 16))
    except ValueError:
        return None
    return parsed if parsed.trace_id and parsed.span_id else None


def _child(parent: LightSpan | None) -> LightSpan:
    span_id = _random_bits(64) or 1
    if parent is None:
        return LightSpan(_random_bits(128) or 1, span_id, _SAMPLED)
    return LightSpan(parent.trace_id, span_id, parent.flags)


def _light(span: Span) -> LightSpan:
    ctx = span.get_span_context()
    return LightSpan(ctx.trace_id, ctx.span_id, int(ctx.trace_flags))


def _remote(parent: LightSpan) -> Span:
    return NonRecordingSpan(
        SpanContext(parent.trace_id, parent.span_id, True, TraceFlags(parent.flags))
    )


_ATTRIBUTES: dict[str, dict[str, str]] = {}


def _attributes(path: str) -> dict[str, str]:
    """A method's span attributes, built once per method (the SDK copies them)."""
    found = _ATTRIBUTES.get(path)
    if found is None:
        service, method = split_method(path)
        found = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
        _ATTRIBUTES[path] = found
    return found


def _endpoint(env: Mapping[str, str]) -> str:
    return (
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or "the default endpoint"
    )
