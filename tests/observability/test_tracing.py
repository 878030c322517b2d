"""Traces across real processes, exported by OTLP to a receiver in the test; JSON logs.

The test process is the first client (its spans kept in memory); user and
product export to an in-process OTLP TraceService because their
``OTEL_EXPORTER_OTLP_ENDPOINT`` says so; the registry has no OTEL variable and
exports nothing. One CreateProduct is one trace: the test's client span →
product's server span → product's GetUser client span → user's server span.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from harness import Launcher, Process, serving, serving_plain
from harness.fakes import FakeUsers, users_service
from services.product.client import ProductClient
from services.runtime import (
    Client,
    ClientConfig,
    Internal,
    NotFound,
    RegistryConfig,
    tracing,
)
from services.user.client import UserClient
from switchboard.product.v1 import product_pb2
from switchboard.user.v1 import user_service_pb2, user_service_pb2_grpc
from tests._support import failure
from tests.observability._support import eventually

pytestmark = pytest.mark.e2e

_SERVER = trace_pb2.Span.SPAN_KIND_SERVER
_CLIENT = trace_pb2.Span.SPAN_KIND_CLIENT


@dataclass
class Received:
    """A span as the receiver got it, with its resource's service name."""

    service: str
    span: trace_pb2.Span

    @property
    def status_code(self) -> int:
        for kv in self.span.attributes:
            if kv.key == "rpc.grpc.status_code":
                return int(kv.value.int_value)
        raise AssertionError(f"{self.span.name} has no rpc.grpc.status_code")


@dataclass
class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver that keeps what it is sent."""

    spans: list[Received] = field(default_factory=list)

    async def Export(  # noqa: N802 (gRPC method name)
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            service = next(
                (kv.value.string_value for kv in resource_spans.resource.attributes
                 if kv.key == "service.name"), "?",
            )  # fmt: skip
            for scope in resource_spans.scope_spans:
                self.spans.extend(Received(service, span) for span in scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def of_trace(self, trace_id: int) -> list[Received]:
        raw = trace_id.to_bytes(16, "big")
        return [r for r in self.spans if r.span.trace_id == raw]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, int]]:
    servicer = Receiver()

    def add(server: grpc.aio.Server) -> None:
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]

    async with serving_plain(add) as server:
        yield servicer, server.port


@pytest.fixture
def local_spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process, spans kept in memory; off again afterwards."""
    exporter = InMemorySpanExporter()
    provider = tracing.enable_tracing("test-client")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        tracing.shutdown_tracing()


@dataclass
class Stack:
    registry: Process
    user: Process
    product: Process


@pytest.fixture
async def stack(tmp_path: Path, receiver: tuple[Receiver, int]) -> AsyncIterator[Stack]:
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver[1]}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    async with Launcher(tmp_path) as launch:
        registry = await launch.start("registry")
        common = ("--registry", registry.address, "--log-format", "json")
        user = await launch.start(
            "services.user", "--data-dir", str(tmp_path / "u"), *common, env=otel
        )
        product = await launch.start(
            "services.product", "--data-dir", str(tmp_path / "p"), *common, env=otel
        )
        yield Stack(registry, user, product)


async def _unproject(database: Path, seller_id: str) -> None:
    """Once product's sellers projection holds ``seller_id``, remove it from there."""
    conn = sqlite3.connect(database, timeout=5, check_same_thread=False)
    try:
        found = "SELECT 1 FROM sellers WHERE id = ?"
        await eventually(
            lambda: asyncio.to_thread(lambda: conn.execute(found, (seller_id,)).fetchone()),
            lambda row: row is not None,
            10,
            "the seller projected",
        )
        with conn:
            conn.execute("DELETE FROM sellers WHERE id = ?", (seller_id,))
    finally:
        conn.close()


def _by_name(spans: list[Received], service: str, name: str, kind: int) -> Received:
    found = [
        r for r in spans if r.service == service and r.span.name == name and r.span.kind == kind
    ]
    assert len(found) == 1, f"{service} {name}: {[(r.service, r.span.name) for r in spans]}"
    return found[0]


def _local(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = [s for s in exporter.get_finished_spans() if s.name == name]
    assert len(found) == 1, [s.name for s in exporter.get_finished_spans()]
    return found[0]


async def test_create_product_is_one_trace_across_processes(
    stack: Stack,
    receiver: tuple[Receiver, int],
    local_spans: InMemorySpanExporter,
    tmp_path: Path,
) -> None:
    received = receiver[0]
    config = ClientConfig(registry=RegistryConfig((stack.registry.address,)))
    async with Client(config) as client:
        users = UserClient(await client.connect("user", wait_s=5))
        products = ProductClient(await client.connect("product", wait_s=5))
        seller = await users.create_user(email="ada@example.com", display_name="Ada")
        # A seller in product's projection needs no GetUser: take Ada out of it (as if her
        # creation were not consumed yet), so the check calls the user service.
        await _unproject(tmp_path / "p" / "product.db", seller.id)
        local_spans.clear()
        await products.create_product(
            sku="LAMP-1",
            name="Lamp",
            price=product_pb2.Money(currency_code="EUR", amount_minor=1999),
            seller_id=seller.id,
        )
        with pytest.raises(NotFound):
            await products.get_product("nothing-here")

    create = _local(local_spans, "switchboard.product.v1.ProductService/CreateProduct")
    trace_id = create.context.trace_id
    spans = await eventually(
        lambda: _settled(received, trace_id), lambda s: len(s) >= 3, 10, "three exported spans"
    )
    assert {r.service for r in spans} == {"product", "user"}
    product_server = _by_name(spans, "product", create.name, _SERVER)
    seller_check = _by_name(spans, "product", "switchboard.user.v1.UserService/GetUser", _CLIENT)
    user_server = _by_name(spans, "user", "switchboard.user.v1.UserService/GetUser", _SERVER)
    assert product_server.span.parent_span_id == create.context.span_id.to_bytes(8, "big")
    assert seller_check.span.parent_span_id == product_server.span.span_id
    assert user_server.span.parent_span_id == seller_check.span.span_id
    assert [r.status_code for r in (product_server, seller_check, user_server)] == [0, 0, 0]
    assert create.attributes is not None and create.attributes["rpc.grpc.status_code"] == 0

    # A NOT_FOUND: the code on both sides; an error for the caller, not for the server.
    get = _local(local_spans, "switchboard.product.v1.ProductService/GetProduct")
    assert get.attributes is not None and get.attributes["rpc.grpc.status_code"] == 5
    assert not get.status.is_ok
    failed = await eventually(
        lambda: _settled(received, get.context.trace_id), lambda s: len(s) == 1, 10, "GetProduct"
    )
    assert failed[0].status_code == 5
    assert failed[0].span.status.code == trace_pb2.Status.STATUS_CODE_UNSET

    # JSON logs: every line an object; the seller check's access line carries both ids.
    trace_hex = format(trace_id, "032x")

    async def access_lines(process: Process) -> list[dict[str, Any]]:
        """The process's access lines of this trace (its log is flushed every 100 ms)."""
        return [
            line
            for line in _json_lines(process)
            if line["logger"] == "switchboard.access" and line["trace_id"] == trace_hex
        ]

    access = await eventually(lambda: access_lines(stack.user), bool, 5, "user access line")
    assert len(access) == 1, _json_lines(stack.user)[-5:]
    line = access[0]
    assert line["method"] == "/switchboard.user.v1.UserService/GetUser" and line["code"] == "OK"
    assert line["request_id"] and line["peer"].startswith("ipv") and line["duration"] >= 0
    assert {"time", "level", "message"} <= line.keys()
    product_access = await eventually(
        lambda: access_lines(stack.product), bool, 5, "product access line"
    )
    assert [p["request_id"] for p in product_access] == [line["request_id"]]

    # No OTEL variable, no exporter: the registry sent nothing and said nothing about it.
    assert all(r.service != "registry" for r in received.spans)
    assert "tracing on" not in stack.registry.log()
    assert "tracing on: OTLP export" in stack.user.log()


async def _settled(received: Receiver, trace_id: int) -> list[Received]:
    await asyncio.sleep(0)
    return received.of_trace(trace_id)


def _json_lines(proc: Process) -> list[dict[str, Any]]:
    lines = [line for line in proc.log().splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines if not line.startswith("I1")]
    assert parsed and all(isinstance(p, dict) for p in parsed)
    for entry in parsed:
        assert {"time", "level", "logger", "message", "request_id", "trace_id"} <= entry.keys()
    return parsed


def test_no_otel_variables_no_tracing() -> None:
    assert tracing.tracing_mode({}) == "off"
    assert not tracing.configure_tracing("user", {})
    assert not tracing.tracing_enabled()
    assert tracing.start_client_span("/a.v1.S/M") is None
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}
    assert tracing.tracing_mode(endpoint) == "otlp"
    assert tracing.tracing_mode({**endpoint, "OTEL_SDK_DISABLED": "true"}) == "off"
    assert tracing.tracing_mode({"OTEL_TRACES_EXPORTER": "none"}) == "spans"


@pytest.fixture
def propagation() -> Iterator[None]:
    """Trace context on in this process (no SDK); off again afterwards."""
    tracing.enable_propagation()
    try:
        yield
    finally:
        tracing.shutdown_tracing()


async def test_an_internal_error_carries_the_trace_id(propagation: None) -> None:
    users = FakeUsers()
    users.script["GetUser"] = [RuntimeError("boom")]
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    traceparent = f"00-{trace_id}-b7ad6b7169203331-01"
    async with (
        serving([users_service(users)]) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        stub = user_service_pb2_grpc.UserServiceStub(channel)
        call = stub.GetUser(
            user_service_pb2.GetUserRequest(id="x"), metadata=(("traceparent", traceparent),)
        )
        error = await failure(call)
    assert isinstance(error, Internal)
    assert error.metadata["trace_id"] == trace_id and error.metadata["request_id"]
    assert "boom" not in error.message
