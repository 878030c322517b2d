"""The error hierarchy: statuses with google.rpc details, and the client boundary."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio
import pytest
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped, unused-ignore]
from grpc_status import rpc_status  # type: ignore[import-untyped, unused-ignore]

from services.runtime import errors
from services.runtime.errors import (
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    SwitchboardError,
    from_rpc_error,
)
from tests.runtime._support import SAMPLE_ERRORS, method, unary

DETAILS_KEY = "grpc-status-details-bin"


def _status_proto(err: SwitchboardError) -> Any:
    (key, value), *_ = err.to_status().trailing_metadata
    assert key == DETAILS_KEY
    return status_pb2.Status.FromString(value)


def _unpacked(status: Any, message_type: Any) -> list[Any]:
    found = []
    for packed in status.details:
        if packed.Is(message_type.DESCRIPTOR):
            message = message_type()
            packed.Unpack(message)
            found.append(message)
    return found


def test_every_status_code_but_ok_has_its_own_class() -> None:
    classes = {
        errors.error_class_for(code) for code in grpc.StatusCode if code != grpc.StatusCode.OK
    }
    assert len(classes) == len(grpc.StatusCode) - 1
    assert all(
        cls.code.name == cls.__name__.upper() or cls.code != grpc.StatusCode.OK for cls in classes
    )
    assert errors.error_class_for(grpc.StatusCode.OK) is errors.Unknown


def test_status_carries_code_message_and_error_info() -> None:
    err = errors.PermissionDenied("not yours", reason="NOT_OWNER", metadata={"owner": "users/7"})
    status = err.to_status()
    assert status.code == grpc.StatusCode.PERMISSION_DENIED
    assert status.details == "not yours"
    (info,) = _unpacked(_status_proto(err), error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "NOT_OWNER",
        "switchboard.dev",
        {"owner": "users/7"},
    )


def test_reason_defaults_to_the_code_name() -> None:
    assert errors.Unavailable("down").reason == "UNAVAILABLE"
    assert errors.Internal().message == "internal"


def test_invalid_argument_packs_bad_request() -> None:
    err = InvalidArgument("bad", violations=[("email", "must contain '@'")])
    (bad,) = _unpacked(_status_proto(err), error_details_pb2.BadRequest)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("email", "must contain '@'")
    ]
    assert err.violations == (FieldViolation("email", "must contain '@'"),)


def test_not_found_packs_resource_info() -> None:
    err = NotFound.for_resource("User", "users/42")
    assert str(err) == "User 'users/42' not found"
    (info,) = _unpacked(_status_proto(err), error_details_pb2.ResourceInfo)
    assert (info.resource_type, info.resource_name) == ("User", "users/42")


def test_resource_exhausted_packs_retry_info() -> None:
    (info,) = _unpacked(
        _status_proto(ResourceExhausted("slow", retry_delay=1.5)), error_details_pb2.RetryInfo
    )
    assert info.retry_delay.ToNanoseconds() == 1_500_000_000
    assert _unpacked(_status_proto(ResourceExhausted("slow")), error_details_pb2.RetryInfo) == []


@pytest.mark.parametrize("name", sorted(SAMPLE_ERRORS))
async def test_round_trip_through_a_server(channel: grpc.aio.Channel, name: str) -> None:
    sent = SAMPLE_ERRORS[name]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await unary(channel, "Raise")(name.encode())
    assert caught.value.code() == sent.code
    received = from_rpc_error(caught.value)
    assert received == sent
    assert type(received) is type(sent)


async def test_typed_fields_survive_the_round_trip(channel: grpc.aio.Channel) -> None:
    async def received(name: str) -> SwitchboardError:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await unary(channel, "Raise")(name.encode())
        return from_rpc_error(caught.value)

    invalid = await received("InvalidArgument")
    assert isinstance(invalid, InvalidArgument)
    assert invalid.violations[0] == ("user.email", "must contain '@'")
    missing = await received("NotFound")
    assert isinstance(missing, NotFound)
    assert (missing.resource_type, missing.resource_name) == (
        "switchboard.user.v1.User",
        "users/42",
    )
    assert missing.reason == "USER_NOT_FOUND"
    limited = await received("ResourceExhausted")
    assert isinstance(limited, ResourceExhausted)
    assert limited.retry_delay == 1.5


async def test_grpc_status_from_call_reads_aio_errors(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await unary(channel, "Raise")(b"NotFound")
    status = rpc_status.from_call(caught.value)
    assert status.code == grpc.StatusCode.NOT_FOUND.value[0]


async def test_round_trip_through_a_sync_channel(server_port: int) -> None:
    def failed_call() -> grpc.RpcError:
        with grpc.insecure_channel(f"127.0.0.1:{server_port}") as channel:
            try:
                raise_: grpc.UnaryUnaryMultiCallable[Any, Any] = channel.unary_unary(
                    method("Raise")
                )
                raise_(b"Aborted", timeout=10)
            except grpc.RpcError as err:
                return err
        raise AssertionError("the call succeeded")

    # The sync client blocks, so it runs in a thread while the loop serves.
    rpc_error = await asyncio.to_thread(failed_call)
    assert from_rpc_error(rpc_error) == SAMPLE_ERRORS["Aborted"]


@pytest.mark.parametrize("code", list(grpc.StatusCode), ids=lambda code: code.name)
def test_errors_without_details_map_by_code(code: grpc.StatusCode) -> None:
    rpc_error = grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="plain"
    )
    err = from_rpc_error(rpc_error)
    assert type(err) is errors.error_class_for(code)
    assert err.message == "plain"
    assert err.reason == type(err).code.name


def test_inconsistent_details_are_ignored() -> None:
    # A proxy that rewrote the code: the trailer no longer describes this status.
    trailer = SAMPLE_ERRORS["NotFound"].to_status().trailing_metadata
    rpc_error = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*trailer),
        details="proxy",
    )
    assert from_rpc_error(rpc_error) == errors.Unavailable("proxy")


def test_equality_and_hash_follow_the_fields() -> None:
    assert NotFound.for_resource("User", "a") == NotFound.for_resource("User", "a")
    assert NotFound.for_resource("User", "a") != NotFound.for_resource("User", "b")
    assert errors.NotFound("x") != errors.AlreadyExists("x")
    assert len({errors.Internal("x"), errors.Internal("x")}) == 1
