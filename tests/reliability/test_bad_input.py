"""Bad input to every RPC of every real process: a precise status, no leak, nothing changed.

* A message over the receive limit → RESOURCE_EXHAUSTED.
* Bytes that are no protobuf, and invalid UTF-8 in any string field (nested
  ones too) → INVALID_ARGUMENT whose details name no Python internals.
* Huge or numerous metadata sent by a raw HTTP/2 client → refused, whether
  the headers come after the client acknowledged the server's SETTINGS (gRPC
  core's limit) or before (the runtime's own check), with memory bounded.

Every test compares the platform's visible state before and after.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest
import pytest_asyncio

from harness import Launcher
from switchboard.registry.v1 import instance_pb2
from switchboard.registry.v1 import registry_service_pb2 as rs
from tests.reliability._support.contracts import (
    Rpc,
    all_rpcs,
    call_raw,
    encode_at,
    string_paths,
)
from tests.reliability._support.garbage import platform_state, seed
from tests.reliability._support.rawh2 import RawH2, call_once
from tests.reliability._support.stack import Stack, start_stack

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

MIB = 1024 * 1024
# What must never reach a client: Python exception names, tracebacks, module paths.
INTERNALS = re.compile(
    r"Traceback|DecodeError|Exception|Error\(|UnicodeDecode|google\.protobuf|\.py\b|File \""
)
INVALID_UTF8 = b"ok\xff\xfe\xc3("


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("bad-input")
    async with Launcher(tmp) as launcher:
        started = await start_stack(launcher, tmp, users=1, product=True)
        await seed(started)
        yield started


def address_of(platform: Stack, rpc: Rpc) -> str:
    if rpc.service_key == "registry":
        return platform.registry.address
    if rpc.service_key == "user":
        return platform.users[0].address
    assert platform.product is not None
    return platform.product.address


async def answers(platform: Stack, cases: list[tuple[Rpc, bytes]]) -> list[tuple[str, str]]:
    """(rpc, code: details) for every case, over one channel per service."""
    results: list[tuple[str, str]] = []
    channels: dict[str, grpc.aio.Channel] = {}
    try:
        for rpc, payload in cases:
            address = address_of(platform, rpc)
            channel = channels.setdefault(address, grpc.aio.insecure_channel(address))
            # A bad request never opens a stream: wait for its outcome, however slow.
            code, details = await call_raw(channel, rpc, payload, open_s=5.0)
            results.append((str(rpc), f"{code.name}: {details}"))
    finally:
        for channel in channels.values():
            await channel.close()
    return results


def assert_all(results: list[tuple[str, str]], code: grpc.StatusCode) -> None:
    wrong = [(rpc, answer) for rpc, answer in results if not answer.startswith(code.name + ":")]
    assert not wrong, f"expected {code.name}: {wrong}"
    leaks = [(rpc, answer) for rpc, answer in results if INTERNALS.search(answer)]
    assert not leaks, f"details leak internals: {leaks}"


async def test_an_oversized_message_is_resource_exhausted(platform: Stack) -> None:
    before = await platform_state(platform)
    oversized = encode_at(
        string_paths(rs.ResolveRequest.DESCRIPTOR)[:1][0], b"a" * (4 * MIB + 1024)
    )
    results = await answers(platform, [(rpc, oversized) for rpc in all_rpcs()])
    assert_all(results, grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert await platform_state(platform) == before


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", id="varint-overflow"),
        pytest.param(b"\x0a\x7f" + b"x" * 10, id="truncated-length"),
        pytest.param(b"\x0f", id="group-end-tag"),
        pytest.param(b"\x0e", id="invalid-wire-type"),
        pytest.param(b"\x08", id="missing-varint"),
        pytest.param(b"\x0b\x0a\x01x", id="unterminated-group"),
    ],
)
async def test_undecodable_bytes_are_invalid_argument(platform: Stack, payload: bytes) -> None:
    before = await platform_state(platform)
    results = await answers(platform, [(rpc, payload) for rpc in all_rpcs()])
    assert_all(results, grpc.StatusCode.INVALID_ARGUMENT)
    assert await platform_state(platform) == before


async def test_invalid_utf8_in_any_string_field_is_invalid_argument(platform: Stack) -> None:
    before = await platform_state(platform)
    cases = [
        (rpc, encode_at(path, INVALID_UTF8))
        for rpc in all_rpcs()
        for path in string_paths(rpc.request_descriptor)
    ]
    assert len(cases) > 50  # every string field of every request, nested ones included
    results = await answers(platform, cases)
    assert_all(results, grpc.StatusCode.INVALID_ARGUMENT)
    assert await platform_state(platform) == before


# --- metadata ------------------------------------------------------------------------

REGISTER = "/switchboard.registry.v1.RegistryService/Register"
HEALTH = "/grpc.health.v1.Health/Check"


def huge_metadata() -> dict[str, list[tuple[str, str]]]:
    return {
        "one 1 MiB value": [("x-pad", "a" * MIB)],
        "one 64 KiB value": [("x-pad", "a" * (64 * 1024))],
        "10000 small headers": [(f"x-h{i}", "v") for i in range(10_000)],
        "binary 1 MiB value": [("x-pad-bin", "YWFh" * (MIB // 4))],
    }


def register_bytes(instance_id: str) -> bytes:
    instance = instance_pb2.Instance(
        service="intruder", instance_id=instance_id, address="127.0.0.1:9"
    )
    return rs.RegisterRequest(instance=instance).SerializeToString()


@pytest.mark.parametrize("acknowledged", [True, False], ids=["after-settings-ack", "first-flight"])
async def test_huge_metadata_is_refused(platform: Stack, acknowledged: bool) -> None:
    """A raw client's oversized headers never reach a handler: no registration happens."""
    before = await platform_state(platform)
    for name, headers in huge_metadata().items():
        conn = await RawH2.connect("127.0.0.1", platform.registry.port)
        try:
            if acknowledged:  # read the server's SETTINGS and acknowledge them first
                await conn.receive_until(lambda: False, 0.2)
            reply = await conn.call(REGISTER, register_bytes(f"i-{len(name)}"), headers)
        finally:
            await conn.close()
        assert reply.refused, f"{name}: served with grpc-status {reply.grpc_status}"
        if reply.grpc_status is not None:
            assert reply.grpc_status == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], name
    assert await platform_state(platform) == before
    assert platform.registry.running


async def test_memory_stays_bounded_under_metadata_abuse(platform: Stack) -> None:
    """60 calls with 1 MiB of headers, sent in the first flight: resident memory stays bounded."""
    user = platform.users[0]
    baseline = user.rss_bytes()
    for _ in range(60):
        reply = await call_once(f"127.0.0.1:{user.port}", HEALTH, b"", [("x-pad", "a" * MIB)])
        assert reply.refused
    growth = user.rss_bytes() - baseline
    assert growth < 48 * MIB, f"resident memory grew by {growth / MIB:.0f} MiB"
    assert user.running
