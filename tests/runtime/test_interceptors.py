"""Request id, access log, error mapping and request decoding on a real in-process server."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import grpc.aio
import pytest
from google.rpc import error_details_pb2  # type: ignore[import-untyped, unused-ignore]
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped, unused-ignore]

from services.runtime import Internal, InvalidArgument, NotFound, from_rpc_error
from services.runtime.server._wrapper import incoming_request_id
from tests.reliability._support.rawh2 import call_once
from tests.runtime._support import (
    SECRET,
    bidi,
    client_stream,
    eventually,
    method,
    server_stream,
    unary,
)

ACCESS = "switchboard.access"


def _trailer(call_or_error: Any, key: str) -> str | None:
    for k, value in call_or_error.trailing_metadata() or ():
        if k == key:
            return str(value)
    return None


def _everything_the_client_sees(err: grpc.aio.AioRpcError) -> str:
    return f"{err.details()} {err.trailing_metadata()!r} {err.debug_error_string()}"


# --- request id and deadline ---------------------------------------------------------


async def test_request_id_round_trips(channel: grpc.aio.Channel) -> None:
    call = unary(channel, "WhoAmI")(b"", metadata=(("x-request-id", "req-123"),))
    seen = (await call).decode()
    assert seen.split("|")[0] == "req-123"
    assert (await call.trailing_metadata())["x-request-id"] == "req-123"


async def test_request_id_is_generated_when_missing(channel: grpc.aio.Channel) -> None:
    call = unary(channel, "WhoAmI")(b"")
    handler_id = (await call).decode().split("|")[0]
    assert len(handler_id) == 32
    assert (await call.trailing_metadata())["x-request-id"] == handler_id


async def test_unsafe_request_id_is_replaced(channel: grpc.aio.Channel) -> None:
    call = unary(channel, "WhoAmI")(b"", metadata=(("x-request-id", "a b"),))
    assert (await call).decode().split("|")[0] != "a b"
    assert incoming_request_id([("x-request-id", "x" * 129)]) is None
    assert incoming_request_id([("x-request-id", "ok-1")]) == "ok-1"


async def test_request_id_survives_handler_trailers_and_errors(channel: grpc.aio.Channel) -> None:
    call = unary(channel, "OwnTrailers")(b"", metadata=(("x-request-id", "r1"),))
    await call
    trailers = await call.trailing_metadata()
    assert (trailers["x-own"], trailers["x-request-id"]) == ("1", "r1")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await unary(channel, "Raise")(b"NotFound", metadata=(("x-request-id", "r2"),))
    assert _trailer(caught.value, "x-request-id") == "r2"
    assert isinstance(from_rpc_error(caught.value), NotFound)


async def test_deadline_is_visible_to_the_handler(channel: grpc.aio.Channel) -> None:
    with_deadline = (await unary(channel, "WhoAmI")(b"", timeout=5)).decode()
    remaining = float(with_deadline.split("|")[1])
    assert 3.0 < remaining <= 5.5
    without = (await unary(channel, "WhoAmI")(b"")).decode()
    assert without.split("|")[1] == "None"


# --- access log ----------------------------------------------------------------------


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> logging.LogRecord:
    def found() -> bool:
        return any(text in r.getMessage() for r in caplog.records if r.name == ACCESS)

    await eventually(found)
    return next(r for r in caplog.records if r.name == ACCESS and text in r.getMessage())


async def test_access_log_line(channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    await unary(channel, "Echo")(b"x", metadata=(("x-request-id", "log-1"),))
    record = await _logged(caplog, "request_id=log-1")
    line = record.getMessage()
    assert record.levelno == logging.INFO
    assert f"method={method('Echo')} code=OK duration_ms=" in line
    assert "peer=ipv" in line


@pytest.mark.parametrize(
    ("name", "payload", "code"),
    [
        ("Raise", b"NotFound", "NOT_FOUND"),
        ("Boom", b"", "INTERNAL"),
        ("Abort", b"", "PERMISSION_DENIED"),
        ("SetCode", b"", "FAILED_PRECONDITION"),
        ("GenThenFail", b"InvalidArgument", "INVALID_ARGUMENT"),
    ],
)
async def test_access_log_records_the_final_code(
    channel: grpc.aio.Channel,
    caplog: pytest.LogCaptureFixture,
    name: str,
    payload: bytes,
    code: str,
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    rid = f"final-{name}"
    callable_: Any = server_stream(channel, name) if name == "GenThenFail" else unary(channel, name)
    with pytest.raises(grpc.aio.AioRpcError):
        call = callable_(payload, metadata=(("x-request-id", rid),))
        if name == "GenThenFail":
            async for _ in call:
                pass
        else:
            await call
    record = await _logged(caplog, f"request_id={rid}")
    assert f"code={code} " in record.getMessage()


async def test_access_log_deadline(server_port: int, caplog: pytest.LogCaptureFixture) -> None:
    """The server's own deadline passing mid-handler is logged as DEADLINE_EXCEEDED.

    A raw HTTP/2 client sends ``grpc-timeout`` and never cancels, so the deadline that
    passes is the server's. (A grpc client's deadline fires first on its side and reaches
    the server as a cancel, which the server can only log as CANCELLED: the wire says
    RST_STREAM CANCEL for both.)
    """
    caplog.set_level(logging.INFO, logger=ACCESS)
    headers = [("grpc-timeout", "2S"), ("x-request-id", "late")]
    reply = await call_once(f"127.0.0.1:{server_port}", method("Slow"), b"5", headers, 10.0)
    assert reply.grpc_status == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    assert "code=DEADLINE_EXCEEDED" in (await _logged(caplog, "request_id=late")).getMessage()


async def test_access_log_cancelled(
    channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    call = server_stream(channel, "Hang")(b"5", metadata=(("x-request-id", "gone"),))
    await asyncio.wait_for(call.initial_metadata(), 5)  # the handler is running
    call.cancel()
    assert await call.code() == grpc.StatusCode.CANCELLED
    assert "code=CANCELLED" in (await _logged(caplog, "request_id=gone")).getMessage()


async def test_unknown_method_is_logged(
    channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await unary(channel, "Nope")(b"", metadata=(("x-request-id", "nope-1"),))
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "code=UNIMPLEMENTED" in (await _logged(caplog, "request_id=nope-1")).getMessage()


# --- error mapping -------------------------------------------------------------------


async def test_bad_request_details_parse(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await unary(channel, "Raise")(b"InvalidArgument")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    raw = next(v for k, v in caught.value.trailing_metadata() if k == "grpc-status-details-bin")
    from google.rpc import status_pb2  # type: ignore[import-untyped, unused-ignore]

    status = status_pb2.Status.FromString(raw)
    kinds = {packed.TypeName() for packed in status.details}
    assert {"google.rpc.ErrorInfo", "google.rpc.BadRequest"} <= kinds
    bad = error_details_pb2.BadRequest()
    next(p for p in status.details if p.TypeName() == "google.rpc.BadRequest").Unpack(bad)
    assert bad.field_violations[0].field == "user.email"


async def test_unexpected_exception_becomes_a_generic_internal(
    channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await unary(channel, "Boom")(b"", metadata=(("x-request-id", "boom-1"),))
    err = caught.value
    assert err.code() == grpc.StatusCode.INTERNAL
    assert err.details() == "internal error; request id boom-1"
    seen = _everything_the_client_sees(err)
    for leak in ("SecretBoomError", SECRET, "Traceback", "RuntimeError"):
        assert leak not in seen
    typed = from_rpc_error(err)
    assert isinstance(typed, Internal)
    assert typed.metadata == {"request_id": "boom-1"}
    await eventually(lambda: "SecretBoomError" in caplog.text)
    assert SECRET in caplog.text and "Traceback" in caplog.text


async def test_handler_abort_passes_through(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await unary(channel, "Abort")(b"")
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert caught.value.details() == "handler said no"


async def test_set_code_without_raising_is_kept(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await unary(channel, "SetCode")(b"")
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize("name", ["GenThenFail", "WriteThenFail"])
async def test_server_streaming_errors_are_mapped(channel: grpc.aio.Channel, name: str) -> None:
    received: list[bytes] = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for message in server_stream(channel, name)(b"NotFound"):
            received.append(message)
    assert received in ([b"1", b"2"], [b"1"])
    assert isinstance(from_rpc_error(caught.value), NotFound)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in server_stream(channel, name)(b"boom"):
            pass
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "SecretBoomError" not in _everything_the_client_sees(caught.value)


async def test_client_streaming_and_bidi(channel: grpc.aio.Channel) -> None:
    async def requests(*items: bytes) -> Any:
        for item in items:
            yield item

    assert await client_stream(channel, "Count")(requests(b"a", b"b", b"c")) == b"3"
    got: list[bytes] = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for message in bidi(channel, "Bidi")(requests(b"ok", b"InvalidArgument")):
            got.append(message)
    assert got == [b"ok"]
    assert isinstance(from_rpc_error(caught.value), InvalidArgument)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in bidi(channel, "Bidi")(requests(b"boom")):
            pass
    assert caught.value.code() == grpc.StatusCode.INTERNAL


# --- request decoding and limits -----------------------------------------------------

GARBAGE = b"\xff\xff\xff\xff not protobuf"


async def test_typed_method_decodes_good_requests(channel: grpc.aio.Channel) -> None:
    request = health_pb2.HealthCheckRequest(service="x").SerializeToString()
    reply = health_pb2.HealthCheckResponse.FromString(await unary(channel, "Typed")(request))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_undecodable_unary_request_is_invalid_argument(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await unary(channel, "Typed")(GARBAGE)
    err = caught.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == "request is not a valid grpc.health.v1.HealthCheckRequest message"
    assert "DecodeError" not in _everything_the_client_sees(err)
    assert from_rpc_error(err).reason == "MALFORMED_REQUEST"


async def test_undecodable_streamed_request_is_invalid_argument(channel: grpc.aio.Channel) -> None:
    async def requests() -> Any:
        yield health_pb2.HealthCheckRequest().SerializeToString()
        yield GARBAGE

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client_stream(channel, "TypedCount")(requests())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "DecodeError" not in _everything_the_client_sees(caught.value)


async def test_oversized_request_is_resource_exhausted(channel: grpc.aio.Channel) -> None:
    from tests.runtime._support import MAX_RECEIVE

    assert await unary(channel, "Echo")(b"x" * (MAX_RECEIVE - 100)) == b"x" * (MAX_RECEIVE - 100)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await unary(channel, "Echo")(b"x" * (MAX_RECEIVE + 1))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
