"""Retries and deadlines: what is retried, how often, and when the caller hears of it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

from services.runtime import errors
from services.runtime.client._client import Client, ClientConfig, Connection
from services.runtime.client._retry import (
    IDEMPOTENT_WRITE,
    KEYED_WRITE,
    NO_RETRY,
    READ,
    MethodSpec,
    RetrySettings,
    policy_for,
    retry_table,
)
from services.user.client import CREATE_USER, GET_USER, UserClient
from switchboard.user.v1 import user_pb2, user_service_pb2
from tests._support import LoopLag
from tests.client._support import Instance, StartUsers

FAST = RetrySettings(max_attempts=4, initial_backoff_s=0.01, max_backoff_s=0.05, jitter_s=0.01)


@pytest.fixture
async def instance(start_users: StartUsers) -> Instance:
    return await start_users("only")


async def _connect(instance: Instance, **config: object) -> AsyncIterator[Connection]:
    """A connection whose channel is already up: a short deadline times the call, not a connect."""
    settings = ClientConfig(static={"user": (instance.address,)}, retry=FAST)
    client = Client(ClientConfig(**{**settings.__dict__, **config}))
    try:
        connection = await client.connect("user")
        await asyncio.wait_for(connection.channel.channel_ready(), 10.0)
        yield connection
    finally:
        await client.close()


@pytest.fixture
async def conn(instance: Instance) -> AsyncIterator[Connection]:
    async for connection in _connect(instance):
        yield connection


# The table the runtime once held by hand; the contracts must now say the same.
_EXPECTED = {
    "switchboard.user.v1.UserService": {
        "CreateUser": KEYED_WRITE, "GetUser": READ, "ListUsers": READ,
        "UpdateUser": KEYED_WRITE, "DeleteUser": KEYED_WRITE, "WatchUsers": NO_RETRY,
    },
    "switchboard.product.v1.ProductService": {
        "CreateProduct": KEYED_WRITE, "GetProduct": READ, "ListProducts": READ,
        "UpdateProduct": KEYED_WRITE, "DeleteProduct": KEYED_WRITE,
        "ReserveStock": KEYED_WRITE, "ReleaseStock": KEYED_WRITE, "WatchProducts": NO_RETRY,
    },
    "switchboard.registry.v1.RegistryService": {
        "Register": IDEMPOTENT_WRITE, "Heartbeat": IDEMPOTENT_WRITE, "KeepAlive": NO_RETRY,
        "Deregister": IDEMPOTENT_WRITE, "Resolve": READ, "Watch": NO_RETRY,
        "ListServices": READ,
    },
}  # fmt: skip


@pytest.mark.parametrize("service", sorted(_EXPECTED))
def test_retry_table_is_computed_from_the_contract(service: str) -> None:
    descriptor = descriptor_pool.Default().FindServiceByName(service)
    expected = {f"/{service}/{name}": policy for name, policy in _EXPECTED[service].items()}
    assert retry_table(descriptor) == expected


def test_a_service_the_runtime_never_heard_of_gets_policies_from_its_options() -> None:
    pool = descriptor_pool.DescriptorPool()
    file = descriptor_pb2.FileDescriptorProto(name="acme.proto", package="acme.v1")
    keyed = file.message_type.add(name="Keyed")
    keyed.field.add(name="request_id", number=1, type=9, label=1)
    file.message_type.add(name="Plain")
    service = file.service.add(name="Orders")
    levels = descriptor_pb2.MethodOptions
    for name, request, level, streams in [
        ("Get", "Plain", levels.NO_SIDE_EFFECTS, False),
        ("Put", "Plain", levels.IDEMPOTENT, False),
        ("Create", "Keyed", levels.IDEMPOTENCY_UNKNOWN, False),
        ("Poke", "Plain", levels.IDEMPOTENCY_UNKNOWN, False),
        ("Follow", "Plain", levels.NO_SIDE_EFFECTS, True),
    ]:
        method = service.method.add(name=name, input_type=f".acme.v1.{request}")
        method.output_type = ".acme.v1.Plain"
        method.server_streaming = streams
        method.options.idempotency_level = level
    pool.Add(file)
    table = retry_table(pool.FindServiceByName("acme.v1.Orders"))
    assert table == {
        "/acme.v1.Orders/Get": READ,
        "/acme.v1.Orders/Put": IDEMPOTENT_WRITE,
        "/acme.v1.Orders/Create": KEYED_WRITE,
        "/acme.v1.Orders/Poke": NO_RETRY,
        "/acme.v1.Orders/Follow": NO_RETRY,
    }


def test_health_check_is_a_read() -> None:
    assert policy_for("/grpc.health.v1.Health/Check") is READ
    assert policy_for("/grpc.health.v1.Health/Watch") is NO_RETRY


def test_policies_by_kind_of_method() -> None:
    assert policy_for("/switchboard.user.v1.UserService/GetUser") is READ
    assert policy_for("/switchboard.product.v1.ProductService/ReserveStock") is KEYED_WRITE
    assert policy_for("/switchboard.registry.v1.RegistryService/Register") is IDEMPOTENT_WRITE
    assert policy_for("/switchboard.user.v1.UserService/WatchUsers") is NO_RETRY
    assert policy_for("/some.Unknown/Method") is NO_RETRY
    assert MethodSpec.of("/switchboard.user.v1.UserService/CreateUser").auto_idempotency_key
    assert not GET_USER.auto_idempotency_key
    # A keyed write without a request_id field is never retried.
    assert GET_USER.with_policy(KEYED_WRITE).policy is NO_RETRY


async def test_unavailable_read_is_retried(instance: Instance, conn: Connection) -> None:
    instance.servicer.script["GetUser"] = [errors.Unavailable("blip"), errors.Unavailable("blip")]
    reply = await conn.call(GET_USER, user_service_pb2.GetUserRequest(id="x"))
    assert reply.user.id == "only"
    assert instance.servicer.calls["GetUser"] == 3


@pytest.mark.parametrize(
    "error",
    [
        errors.InvalidArgument("bad", violations=[("id", "empty")]),
        errors.NotFound.for_resource("User", "x"),
        errors.AlreadyExists.for_resource("User", "x"),
        errors.PermissionDenied("no"),
        errors.FailedPrecondition("no"),
        errors.Aborted("conflict"),
        errors.Unauthenticated("who"),
        errors.ResourceExhausted("no RetryInfo"),
        errors.Internal("oops"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_non_retryable_codes_are_attempted_once(
    instance: Instance, conn: Connection, error: errors.SwitchboardError
) -> None:
    instance.servicer.script["GetUser"] = [error]
    with pytest.raises(type(error)) as caught:
        await conn.call(GET_USER, user_service_pb2.GetUserRequest(id="x"))
    assert instance.servicer.calls["GetUser"] == 1
    assert caught.value.reason == error.reason


async def test_resource_exhausted_with_retry_info_waits_and_retries(
    instance: Instance, conn: Connection
) -> None:
    instance.servicer.script["GetUser"] = [errors.ResourceExhausted("slow down", retry_delay=0.1)]
    start = time.monotonic()
    await conn.call(GET_USER, user_service_pb2.GetUserRequest(id="x"))
    assert time.monotonic() - start >= 0.09  # the server's delay is a floor for the backoff
    assert instance.servicer.calls["GetUser"] == 2


async def test_create_retried_after_lost_reply_is_applied_once(
    instance: Instance, conn: Connection
) -> None:
    instance.servicer.lose_replies = 1  # commits, then answers UNAVAILABLE once
    users = UserClient(conn)
    user = await users.create_user(email="ada@example.com", display_name="Ada")
    assert instance.servicer.calls["CreateUser"] == 2
    assert list(instance.servicer.users) == [user.id]
    assert len(instance.servicer.by_request_id) == 1


async def test_caller_request_id_is_kept(instance: Instance, conn: Connection) -> None:
    request = user_service_pb2.CreateUserRequest(user=user_pb2.User(email="a@b.c"), request_id="k1")
    await conn.call(CREATE_USER, request)
    assert list(instance.servicer.by_request_id) == ["k1"]


async def test_write_is_not_retried_on_deadline(instance: Instance) -> None:
    instance.servicer.script["CreateUser"] = [1.0]
    per_attempt = RetrySettings(max_attempts=4, initial_backoff_s=0.01, per_attempt_timeout_s=0.1)
    async for conn in _connect(instance, retry=per_attempt):
        with pytest.raises(errors.DeadlineExceeded):
            await UserClient(conn).create_user(email="a@b.c", display_name="A", timeout_s=0.5)
    assert instance.servicer.calls["CreateUser"] == 1


async def test_slow_server_fails_at_the_callers_deadline(instance: Instance) -> None:
    # Two quick failures (retries happen), then the server stalls on every attempt.
    instance.servicer.script["GetUser"] = [errors.Unavailable("blip"), errors.Unavailable("blip")]
    instance.servicer.default_sleep = 5.0
    many = RetrySettings(max_attempts=20, initial_backoff_s=0.02, per_attempt_timeout_s=0.15)
    async for conn in _connect(instance, retry=many):
        start = time.monotonic()
        async with LoopLag() as lag:
            with pytest.raises(errors.DeadlineExceeded):
                await conn.call(GET_USER, user_service_pb2.GetUserRequest(id="x"), timeout_s=0.6)
        elapsed = time.monotonic() - start
    assert 0.55 <= elapsed <= 0.65 + lag.worst, (elapsed, lag.worst)
    assert instance.servicer.calls["GetUser"] >= 4  # it did retry the stalled attempts


async def test_slow_server_single_attempt_deadline(instance: Instance, conn: Connection) -> None:
    instance.servicer.default_sleep = 5.0
    start = time.monotonic()
    async with LoopLag() as lag:
        with pytest.raises(errors.DeadlineExceeded):
            await conn.call(GET_USER, user_service_pb2.GetUserRequest(id="x"), timeout_s=0.3)
    assert 0.25 <= time.monotonic() - start <= 0.35 + lag.worst
    assert instance.servicer.calls["GetUser"] == 1


async def test_spent_deadline_is_deadline_exceeded_without_a_call(
    instance: Instance, conn: Connection
) -> None:
    with pytest.raises(errors.DeadlineExceeded):
        await conn.call(GET_USER, user_service_pb2.GetUserRequest(id="x"), timeout_s=0)
    assert instance.servicer.calls["GetUser"] == 0


async def test_unreachable_service_exhausts_attempts_as_unavailable() -> None:
    client = Client(ClientConfig(static={"user": ("127.0.0.1:1",)}, retry=FAST))
    try:
        conn = await client.connect("user")
        with pytest.raises(errors.Unavailable):
            await conn.call(GET_USER, user_service_pb2.GetUserRequest(id="x"), timeout_s=2)
    finally:
        await client.close()


async def test_generic_call_by_name_maps_errors(instance: Instance, conn: Connection) -> None:
    instance.servicer.script["GetUser"] = [errors.NotFound.for_resource("User", "users/9")]
    with pytest.raises(errors.NotFound) as caught:
        await conn.call(
            "/switchboard.user.v1.UserService/GetUser", user_service_pb2.GetUserRequest(id="9")
        )
    assert caught.value.resource_name == "users/9"
    assert caught.value.code is grpc.StatusCode.NOT_FOUND


async def test_each_attempt_is_logged_with_number_and_cause(
    instance: Instance, conn: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    instance.servicer.script["GetUser"] = [errors.Unavailable("blip"), errors.Unavailable("blip")]
    with caplog.at_level("DEBUG", logger="services.runtime.client"):
        await conn.call(GET_USER, user_service_pb2.GetUserRequest(id="x"))
    lines = [r.getMessage() for r in caplog.records if "attempt" in r.getMessage()]
    assert "attempt 1 failed (UNAVAILABLE: blip); retrying in" in lines[0]
    assert "attempt 2 failed (UNAVAILABLE: blip); retrying in" in lines[1]
    assert lines[2].endswith("attempt 3 succeeded")
