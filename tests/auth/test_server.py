"""The server side around the gate: reflection modes, audit lines, the client's token and caller.

An in-process user server with auth on (the example policy, or a variant).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from grpc_reflection.v1alpha import (  # type: ignore[import-untyped, unused-ignore]
    reflection_pb2,
    reflection_pb2_grpc,
)

from harness import start_server
from services.runtime import Client, ClientConfig, ServerConfig, create_server, request_scope
from services.runtime.auth import Claims, Principal
from services.runtime.auth._identity import bind_principal
from services.runtime.config import ConfigError
from services.runtime.errors import NotFound, PermissionDenied
from services.user import PAGE_TOKEN_SECRET, SqliteUserStore, user_service
from services.user.client import UserClient
from tests.auth._support import EXAMPLE_POLICY, Keys, bearer

WAIT = 5.0


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys.create(tmp_path / "keys")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteUserStore]:
    opened = SqliteUserStore.open(tmp_path / "data")
    yield opened
    opened.end_watches()
    opened.close()


@pytest.fixture
async def servers(store: SqliteUserStore) -> AsyncIterator[list[grpc.aio.Server]]:
    started: list[grpc.aio.Server] = []
    yield started
    store.end_watches()
    for server in started:
        await server.stop(None)


async def serve(
    store: SqliteUserStore, servers: list[grpc.aio.Server], config: ServerConfig
) -> str:
    service = user_service(store, store.db.secret(PAGE_TOKEN_SECRET))
    server = await start_server([service], config)
    servers.append(server.server)
    return server.address


def policy_with(tmp_path: Path, reflection: str) -> Path:
    text = EXAMPLE_POLICY.read_text().replace('reflection = "open"', f'reflection = "{reflection}"')
    path = tmp_path / f"policy-{reflection}.toml"
    path.write_text(text)
    return path


async def list_services(address: str, md: tuple[tuple[str, str], ...] = ()) -> grpc.StatusCode:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(timeout=WAIT, metadata=md)
        try:
            await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
            await call.read()
        except grpc.aio.AioRpcError as err:
            return err.code()
        finally:
            call.cancel()
    return grpc.StatusCode.OK


@pytest.mark.parametrize(
    ("mode", "anonymous", "with_token"),
    [
        ("open", grpc.StatusCode.OK, grpc.StatusCode.OK),
        ("authenticated", grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.OK),
        ("off", grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNIMPLEMENTED),
    ],
)
async def test_reflection_follows_the_policy(
    tmp_path: Path,
    keys: Keys,
    store: SqliteUserStore,
    servers: list[grpc.aio.Server],
    mode: str,
    anonymous: grpc.StatusCode,
    with_token: grpc.StatusCode,
) -> None:
    address = await serve(store, servers, keys.server_config(policy_with(tmp_path, mode)))
    assert await list_services(address) == anonymous
    assert await list_services(address, bearer(keys.token())) == with_token


async def test_without_a_policy_every_call_is_open(
    store: SqliteUserStore, servers: list[grpc.aio.Server]
) -> None:
    address = await serve(store, servers, ServerConfig(listen="127.0.0.1:0"))
    async with Client(ClientConfig(static={"user": (address,)})) as client:
        users = await UserClient.connect(client)
        with pytest.raises(NotFound):
            await users.get_user("nobody")


def test_a_bad_policy_stops_the_server_from_being_built(tmp_path: Path, keys: Keys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[allow]]\nmethods = ['x/Y']\n")
    with pytest.raises(ConfigError, match="names nobody"):
        create_server([], keys.server_config(bad))


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "switchboard.audit"]


async def test_denied_calls_and_mutations_are_audited_reads_are_not(
    keys: Keys,
    store: SqliteUserStore,
    servers: list[grpc.aio.Server],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="switchboard.audit")
    address = await serve(store, servers, keys.server_config())
    writer = keys.token(subject="wendy", scopes=["users:read", "users:write"])
    async with Client(ClientConfig(static={"user": (address,)}, token=writer)) as client:
        users = await UserClient.connect(client)
        user = await users.create_user(email="ada@example.com", display_name="Ada")
        await users.get_user(user.id)
        with pytest.raises(PermissionDenied):
            await users.delete_user(user.id)
    lines = audit_lines(caplog)
    assert len(lines) == 2, lines
    created, denied = lines
    assert "principal=wendy" in created and "CreateUser" in created and "code=OK" in created
    assert f"resource={user.id}" in created  # the id the server chose, from the response
    assert f"resource={user.id}" in denied and "code=PERMISSION_DENIED" in denied
    assert "request_id=" in denied and "request_id=-" not in denied


async def test_a_service_names_its_caller_for_audit_only(
    keys: Keys,
    store: SqliteUserStore,
    servers: list[grpc.aio.Server],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Inside a handler serving alice, an outgoing call says so; it is still judged as itself."""
    caplog.set_level(logging.INFO, logger="switchboard.audit")
    address = await serve(store, servers, keys.server_config())
    service_token = keys.token(subject="svc-product", scopes=["users:read"])
    alice = Principal(claims=Claims("alice", frozenset({"users:write"}), frozenset({"admin"}), 0))
    async with Client(ClientConfig(static={"user": (address,)}, token=service_token)) as client:
        users = await UserClient.connect(client)
        with request_scope(timeout=WAIT):
            bind_principal(alice)  # as the wrapper does for the call being handled
            with pytest.raises(PermissionDenied):  # alice is an admin; the service is not
                await users.delete_user("u-1")
    (line,) = audit_lines(caplog)
    assert "principal=svc-product" in line and "on_behalf_of=alice" in line


async def test_the_client_rereads_its_token_file(
    tmp_path: Path, keys: Keys, store: SqliteUserStore, servers: list[grpc.aio.Server]
) -> None:
    address = await serve(store, servers, keys.server_config())
    token_file = tmp_path / "token"
    token_file.write_text(keys.token(scopes=["nothing"]))
    async with Client(ClientConfig(static={"user": (address,)}, token_file=token_file)) as client:
        users = await UserClient.connect(client)
        with pytest.raises(PermissionDenied):
            await users.get_user("nobody")
        token_file.write_text(keys.token(scopes=["users:read"]) + "\n")
        with pytest.raises(NotFound):
            await users.get_user("nobody")
