"""Stream and PING floods from a hostile client: capped, cut off, and nobody else suffers.

The hostile client is a separate process (``_support/flood.py``) speaking raw
HTTP/2, so its CPU is not the measuring client's. The server is a real
registry process with a limit of 16 concurrent streams per connection.

* Four clients opening far more streams than allowed get the excess refused
  (RST_STREAM): exactly 16 per connection are served.
* A client pinging far more often than allowed (bursts of 50 PINGs) gets
  GOAWAY ENHANCE_YOUR_CALM ("too_many_pings") on every connection it opens,
  however often it reconnects (10 times a second here).
* Meanwhile an ordinary client is not starved: every one of its calls during
  the flood succeeds within a 1 s deadline.
* Its p99 latency stays within 2x of its p99 without the flood. That is a
  speed claim, and speed is not asserted in ``make test`` (on a shared 2-core
  box the flood process itself takes CPU from the measuring client: CI once
  saw 2.52 ms vs 1.25 ms). ``make soak`` asserts it by setting
  ``SWITCHBOARD_FLOOD_P99_RATIO=2``; ``make test`` records both p99s and prints
  them in the run's summary. The test alternates quiet and
  flooded rounds and compares medians over rounds, and a baseline p99 under
  1 ms counts as 1 ms (doubling a 0.4 ms p99 is scheduler jitter, not an
  effect of the flood).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import grpc.aio
import pytest

from harness import PYTHON, Launcher, Process
from tests.reliability._support.rawh2 import ENHANCE_YOUR_CALM
from tests.reliability._support.waits import percentile

pytestmark = pytest.mark.e2e

STREAM_LIMIT = 16
ROUNDS = 5
CALLS_PER_ROUND = 600
# One client pinging too often (it reconnects after each GOAWAY); four clients
# holding every stream they are allowed, and asking for four times more.
CONNECTIONS = {"ping": 1, "streams": 4}
P99_FLOOR_S = 0.001
# Every ordinary call must finish within this during the flood: starvation fails.
CALL_DEADLINE_S = 1.0
# Set by ``make soak``: the p99 ratio (flooded / quiet) to assert; unset, it is recorded.
P99_RATIO_ENV = "SWITCHBOARD_FLOOD_P99_RATIO"


class Flood:
    """The flood process: started, waited for until it floods, then its report."""

    def __init__(self, launcher: Launcher, mode: str, port: int, seconds: float) -> None:
        args = (mode, "127.0.0.1", str(port), f"{seconds:g}", str(CONNECTIONS[mode]))
        self.argv = [PYTHON, "-m", "tests.reliability._support.flood", *args]
        self.launcher = launcher
        self.process: Process | None = None

    async def __aenter__(self) -> Flood:
        self.process = await self.launcher.run("flood", self.argv, listening=False)
        await self.process.wait_output("flooding\n", timeout_s=10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None
        if exc[0] is not None:
            self.process.kill()
        await self.process.wait_exit(15)

    async def report(self) -> dict[str, int]:
        """The JSON line it prints once done (it exits then)."""
        assert self.process is not None
        await self.process.wait_exit(15)
        lines = self.process.output().splitlines()
        line = next(line for line in reversed(lines) if line.startswith("{"))
        result: dict[str, int] = json.loads(line)
        return result


async def p99_of_calls(address: str) -> float:
    """p99 latency (seconds) of CALLS_PER_ROUND sequential ListServices calls."""
    async with grpc.aio.insecure_channel(address) as channel:
        call: Any = channel.unary_unary(  # raw bytes in and out
            "/switchboard.registry.v1.RegistryService/ListServices"
        )
        await call(b"", timeout=5)  # connect first: measure calls, not the handshake
        latencies: list[float] = []
        for _ in range(CALLS_PER_ROUND):
            started = time.perf_counter()
            await call(b"", timeout=CALL_DEADLINE_S)  # a starved call fails the test
            latencies.append(time.perf_counter() - started)
    return percentile(latencies, 0.99)


async def compare_p99(
    launcher: Launcher, registry: Process, mode: str
) -> tuple[float, float, list[dict[str, Any]]]:
    """Median p99 over quiet rounds and over flooded rounds, and the flood reports."""
    quiet: list[float] = []
    flooded: list[float] = []
    reports: list[dict[str, Any]] = []
    for _ in range(ROUNDS):
        quiet.append(await p99_of_calls(registry.address))
        async with Flood(launcher, mode, registry.port, seconds=0.8) as flood:
            flooded.append(await p99_of_calls(registry.address))
            reports.append(await flood.report())
    return statistics.median(quiet), statistics.median(flooded), reports


@pytest.fixture
async def registry(launcher: Launcher) -> Process:
    return await launcher.start(
        "registry", "--max-concurrent-streams", str(STREAM_LIMIT), "--log-level", "WARNING"
    )


def check_p99(quiet: float, flooded: float, record: Callable[[tuple[str, object]], None]) -> None:
    """Record both p99s; under ``make soak`` also assert flooded <= ratio x quiet."""
    record(("p99_quiet_ms", round(quiet * 1000, 3)))
    record(("p99_flooded_ms", round(flooded * 1000, 3)))
    ratio = os.environ.get(P99_RATIO_ENV)
    if ratio is None:
        return
    budget = float(ratio) * max(quiet, P99_FLOOR_S)
    assert flooded <= budget, (
        f"p99 {flooded * 1000:.2f} ms under the flood vs {quiet * 1000:.2f} ms without"
    )


async def test_a_stream_flood_is_capped_and_others_keep_their_latency(
    launcher: Launcher, registry: Process, request: pytest.FixtureRequest
) -> None:
    quiet, flooded, reports = await compare_p99(launcher, registry, "streams")
    for report in reports:
        served = report["streams"] - report["refused_streams"]
        assert served == STREAM_LIMIT * CONNECTIONS["streams"], report
    check_p99(quiet, flooded, request.node.user_properties.append)
    assert registry.running


async def test_a_ping_flood_gets_goaway_and_others_keep_their_latency(
    launcher: Launcher, registry: Process, request: pytest.FixtureRequest
) -> None:
    quiet, flooded, reports = await compare_p99(launcher, registry, "ping")
    for report in reports:
        goaways = report.get(f"goaway {ENHANCE_YOUR_CALM}:too_many_pings", 0)
        # Every connection is told to go away, but those the flood's end cut short.
        assert goaways >= report["connections"] - CONNECTIONS["ping"] > 0, report
    check_p99(quiet, flooded, request.node.user_properties.append)
    assert registry.running
