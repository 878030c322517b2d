"""End to end: ``python -m registry`` as a real process on a real (port-0) port."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from grpc_reflection.v1alpha import (  # type: ignore[import-untyped]
    reflection_pb2,
    reflection_pb2_grpc,
)

from harness import REPO, StartProcess
from registry import SERVICE_NAME
from services.runtime import errors as e
from switchboard.registry.v1 import instance_pb2 as pb
from switchboard.registry.v1 import registry_service_pb2 as rs
from switchboard.registry.v1 import registry_service_pb2_grpc as rs_grpc
from tests._support import failure
from tests.registry._support import WAIT, read, register_request

pytestmark = pytest.mark.e2e


async def test_after_a_restart_a_heartbeat_is_not_found(
    start_registry_process: StartProcess,
) -> None:
    first = await start_registry_process()
    async with grpc.aio.insecure_channel(first.address) as channel:
        stub = rs_grpc.RegistryServiceStub(channel)
        lease = await stub.Register(register_request(), timeout=WAIT)
        await stub.Heartbeat(rs.HeartbeatRequest(lease_id=lease.lease_id), timeout=WAIT)
    first.signal(signal.SIGKILL)
    await first.wait_exit()
    second = await start_registry_process()
    async with grpc.aio.insecure_channel(second.address) as channel:
        stub = rs_grpc.RegistryServiceStub(channel)
        request = rs.HeartbeatRequest(lease_id=lease.lease_id)
        error = await failure(stub.Heartbeat(request, timeout=WAIT))
        assert isinstance(error, e.NotFound) and error.reason == "LEASE_NOT_FOUND"
        # A watcher resuming from the old run's revision must not get a silent gap.
        await stub.Register(register_request(instance_id="u2"), timeout=WAIT)
        watch = stub.Watch(rs.WatchRequest(service="user", start_revision=lease.revision))
        snapshot = (await read(watch)).snapshot
        assert snapshot.reason == pb.SNAPSHOT_REASON_RESYNC
        assert [i.instance_id for i in snapshot.instances] == ["u2"]
        watch.cancel()


async def test_sigterm_with_open_streams_exits_zero(start_registry_process: StartProcess) -> None:
    process = await start_registry_process("--grace-s", "5")
    async with grpc.aio.insecure_channel(process.address) as channel:
        stub = rs_grpc.RegistryServiceStub(channel)
        lease = await stub.Register(register_request(), timeout=WAIT)
        watch = stub.Watch(rs.WatchRequest(service="user"))
        await read(watch)
        keepalive = stub.KeepAlive()
        await keepalive.write(rs.KeepAliveRequest(lease_id=lease.lease_id))
        await asyncio.wait_for(keepalive.read(), WAIT)
        started = time.monotonic()
        process.signal(signal.SIGTERM)
        ended = await failure(watch.read())
        assert isinstance(ended, e.Unavailable)  # watchers move on without waiting the grace
        assert isinstance(await failure(keepalive.read()), e.Unavailable)
        assert await process.wait_exit() == 0
        assert time.monotonic() - started < 4.0  # well within the 5 s grace
    assert "Traceback" not in process.log()


async def test_health_and_reflection_answer(start_registry_process: StartProcess) -> None:
    process = await start_registry_process()
    async with grpc.aio.insecure_channel(process.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", SERVICE_NAME):
            answer = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=WAIT)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = reflection.ServerReflectionInfo(iter([request]), timeout=WAIT)
        names = set()
        async for response in responses:
            names |= {s.name for s in response.list_services_response.service}
        assert SERVICE_NAME in names


async def test_token_from_file_and_environment(
    start_registry_process: StartProcess, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token-123\n")
    process = await start_registry_process(
        "--token-file", str(token_file), env={"SWITCHBOARD_TTL_MAX": "20"}
    )
    async with grpc.aio.insecure_channel(process.address) as channel:
        stub = rs_grpc.RegistryServiceStub(channel)
        error = await failure(stub.Register(register_request(), timeout=WAIT))
        assert isinstance(error, e.Unauthenticated)
        good = (("authorization", "Bearer file-token-123"),)
        too_long = register_request(ttl_s=21)
        error = await failure(stub.Register(too_long, metadata=good, timeout=WAIT))
        assert isinstance(error, e.InvalidArgument)
        assert (await stub.Register(register_request(), metadata=good, timeout=WAIT)).lease_id
    assert "file-token-123" not in process.log()


def test_a_bad_flag_exits_2_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "registry", "--listen", "127.0.0.1:0", "--ttl-min", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "ttl" in result.stderr
