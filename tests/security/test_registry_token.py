"""Registry write authorization, end to end on real registry processes.

* With no token configured, writes are open - and the registry says so in a
  WARNING at start-up. An empty ``SWITCHBOARD_TOKEN`` is "no token", not a
  token that matches an empty credential.
* There is no built-in secret: with a random token configured, no other
  value is accepted - not "", not common defaults, not any string literal that
  appears anywhere in the registry's or the runtime's source code.
* With a token configured, every write RPC (Register, Heartbeat, Deregister,
  KeepAlive) answers UNAUTHENTICATED without it, with a wrong one, or with the
  right one sent under any header other than ``authorization``; nothing
  changes. Reads stay open. The token never shows up in the log.
"""

from __future__ import annotations

import ast
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import grpc.aio
import pytest
from google.protobuf import duration_pb2

from harness import REPO, Launcher, Process
from switchboard.registry.v1 import instance_pb2
from switchboard.registry.v1 import registry_service_pb2 as rs
from switchboard.registry.v1 import registry_service_pb2_grpc as rs_grpc

pytestmark = pytest.mark.e2e

Metadata = tuple[tuple[str, str | bytes], ...]
COMMON_DEFAULTS = [
    "", " ", "token", "secret", "changeme", "change-me", "admin", "password", "default",
    "switchboard", "registry", "test", "dev", "s3cret", "null", "None", "undefined", "*",
]  # fmt: skip


def register_request(instance_id: str = "i-1") -> rs.RegisterRequest:
    instance = instance_pb2.Instance(
        service="user", instance_id=instance_id, address="127.0.0.1:5001"
    )
    return rs.RegisterRequest(instance=instance, ttl=duration_pb2.Duration(seconds=30))


StubFor = Callable[[Process], "rs_grpc.RegistryServiceAsyncStub"]


@pytest.fixture
async def stub_for(launcher: Launcher) -> AsyncIterator[StubFor]:
    """A plaintext registry client for a process; channels closed at the end."""
    channels: list[grpc.aio.Channel] = []

    def make(proc: Process) -> rs_grpc.RegistryServiceAsyncStub:
        channels.append(grpc.aio.insecure_channel(proc.address))
        return rs_grpc.RegistryServiceStub(channels[-1])

    yield make
    for channel in channels:
        await channel.close()


async def code_of(call: Awaitable[object]) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def services_state(stub: rs_grpc.RegistryServiceAsyncStub) -> list[tuple[str, int]]:
    answer = await stub.ListServices(rs.ListServicesRequest(), timeout=5)
    return [(s.name, s.instance_count) for s in answer.services]


@pytest.mark.parametrize("env", [{}, {"SWITCHBOARD_TOKEN": ""}], ids=["unset", "empty"])
async def test_without_a_token_writes_are_open_and_a_warning_says_so(
    launcher: Launcher, stub_for: StubFor, env: dict[str, str]
) -> None:
    registry = await launcher.start("registry", env=env)
    stub = stub_for(registry)
    assert "WARNING" in registry.log() and "no token configured" in registry.log()
    for metadata in [(), (("authorization", "Bearer anything"),)]:
        lease = await stub.Register(register_request(), metadata=metadata, timeout=5)
        await stub.Heartbeat(rs.HeartbeatRequest(lease_id=lease.lease_id), timeout=5)
        await stub.Deregister(rs.DeregisterRequest(lease_id=lease.lease_id), timeout=5)


def source_literals() -> set[str]:
    """Every string constant in the registry's and the server runtime's source code."""
    found: set[str] = set()
    for directory in ("registry", "services/runtime"):
        for path in (REPO / directory).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    found.add(node.value)
    return found


@pytest.fixture
async def guarded(launcher: Launcher) -> tuple[Process, str]:
    token = secrets.token_urlsafe(24)
    return await launcher.start("registry", env={"SWITCHBOARD_TOKEN": token}), token


async def test_no_value_but_the_configured_token_is_accepted(
    guarded: tuple[Process, str], stub_for: StubFor
) -> None:
    registry, token = guarded
    stub = stub_for(registry)
    candidates = (source_literals() | set(COMMON_DEFAULTS)) - {token}
    assert len(candidates) > 300  # the scan found the code's strings
    for candidate in sorted(candidates):
        if not all(" " <= char <= "~" for char in candidate):
            continue  # not a header value anyone could send
        metadata = (("authorization", f"Bearer {candidate}".strip()),)
        code = await code_of(stub.Register(register_request(), metadata=metadata, timeout=5))
        assert code == grpc.StatusCode.UNAUTHENTICATED, f"accepted {candidate!r}"
    assert await services_state(stub) == []
    good = (("authorization", f"Bearer {token}"),)
    assert (await stub.Register(register_request(), metadata=good, timeout=5)).lease_id


def wrong_credentials(token: str) -> dict[str, Metadata]:
    return {
        "none": (),
        "wrong token": (("authorization", "Bearer " + secrets.token_urlsafe(24)),),
        "token prefix": (("authorization", f"Bearer {token[:-1]}"),),
        "token twice": (("authorization", f"Bearer {token}{token}"),),
        "no scheme": (("authorization", token),),
        "basic scheme": (("authorization", f"Basic {token}"),),
        "x-api-key": (("x-api-key", token),),
        "token": (("token", token),),
        "x-token": (("x-token", token),),
        "x-authorization": (("x-authorization", f"Bearer {token}"),),
        "proxy-authorization": (("proxy-authorization", f"Bearer {token}"),),
        "cookie": (("cookie", f"token={token}"),),
        "authorization-bin": (("authorization-bin", f"Bearer {token}".encode()),),
        "two authorizations": (
            ("authorization", f"Bearer {token}"),
            ("authorization", "Bearer x"),
        ),
    }


async def test_every_write_needs_the_token_in_the_authorization_header(
    guarded: tuple[Process, str], stub_for: StubFor
) -> None:
    registry, token = guarded
    stub = stub_for(registry)
    good = (("authorization", f"Bearer {token}"),)
    lease = await stub.Register(register_request("kept"), metadata=good, timeout=5)
    before = await services_state(stub)
    for name, metadata in wrong_credentials(token).items():
        # One call at a time: a grpc.aio call starts as soon as it is made.
        calls: dict[str, Callable[[Metadata], Awaitable[object]]] = {
            "Register": lambda md: stub.Register(register_request("new"), metadata=md, timeout=5),
            "Heartbeat": lambda md: stub.Heartbeat(
                rs.HeartbeatRequest(lease_id=lease.lease_id), metadata=md, timeout=5
            ),
            "Deregister": lambda md: stub.Deregister(
                rs.DeregisterRequest(lease_id=lease.lease_id), metadata=md, timeout=5
            ),
        }
        for method, call in calls.items():
            code = await code_of(call(metadata))
            assert code == grpc.StatusCode.UNAUTHENTICATED, f"{method}, {name}"
        # KeepAlive checks the token when the stream opens, before reading any request.
        stream = stub.KeepAlive(metadata=metadata, timeout=5)
        assert await stream.code() == grpc.StatusCode.UNAUTHENTICATED, f"KeepAlive, {name}"
    assert await services_state(stub) == before
    # Reads stay open, and the right token in the right header works.
    assert len((await stub.Resolve(rs.ResolveRequest(service="user"), timeout=5)).instances) == 1
    await stub.Heartbeat(rs.HeartbeatRequest(lease_id=lease.lease_id), metadata=good, timeout=5)
    assert token not in registry.log()


async def test_the_token_can_come_from_a_file_and_is_never_logged(
    launcher: Launcher, stub_for: StubFor, tmp_path: Path
) -> None:
    token = secrets.token_urlsafe(24)
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    registry = await launcher.start("registry", "--token-file", str(token_file))
    stub = stub_for(registry)
    code = await code_of(stub.Register(register_request(), timeout=5))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    good = (("authorization", f"Bearer {token}"),)
    assert (await stub.Register(register_request(), metadata=good, timeout=5)).lease_id
    assert "no token configured" not in registry.log()
    assert token not in registry.log()
