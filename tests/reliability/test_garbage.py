"""Garbage on every port: the server hangs up at once, keeps serving, and nothing changes.

Each probe opens a fresh TCP connection to a real process (registry, user,
product) and sends bytes no gRPC client would: random bytes, an HTTP/1.1
request, the HTTP/2 preface followed by junk, a TLS ClientHello on a
plaintext port. The precise answer gRPC gives is its own SETTINGS frame and
then a closed connection: no stream is ever started (no HEADERS or DATA
frame comes back) and no HTTP/1.x text. Afterwards every process still
answers health checks as SERVING and its state is exactly what it was.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]

from harness import Launcher
from tests.reliability._support.garbage import (
    assert_hung_up_cleanly,
    platform_state,
    probes,
    seed,
    send_garbage,
)
from tests.reliability._support.stack import health_status, start_stack

pytestmark = pytest.mark.e2e


async def test_garbage_on_every_port_is_refused_and_changes_nothing(
    launcher: Launcher, tmp_path: Path
) -> None:
    platform = await start_stack(launcher, tmp_path, users=1, product=True)
    await seed(platform)
    before = await platform_state(platform)
    assert platform.product is not None
    procs = [platform.registry, *platform.users, platform.product]
    for proc in procs:
        for name, payload in probes().items():
            answer, took = await send_garbage(proc.port, payload)
            assert_hung_up_cleanly(answer)
            assert took < 1.0, f"{proc.module}: {name} took {took:.2f} s to refuse"
    for proc in procs:
        assert proc.running, f"{proc.module} died:\n{proc.log()[-2000:]}"
        assert await health_status(proc.address) == health_pb2.HealthCheckResponse.SERVING
        assert "Traceback" not in proc.log()
    assert await platform_state(platform) == before


async def test_many_garbage_connections_at_once(launcher: Launcher) -> None:
    """A burst of 200 garbage connections in parallel: refused, and the server still serves."""
    registry = await launcher.start("registry")
    payloads = list(probes().values())
    burst = [send_garbage(registry.port, payloads[i % len(payloads)]) for i in range(200)]
    for answer, _took in await asyncio.gather(*burst):
        assert_hung_up_cleanly(answer)
    assert await health_status(registry.address) == health_pb2.HealthCheckResponse.SERVING
    assert registry.running
    fds = registry.open_fds()
    assert fds < 64, f"garbage connections left {fds} descriptors open"
