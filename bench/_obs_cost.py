"""What metrics, tracing and the access log cost: server CPU µs per GetUser, each off and on.

Every configuration is a fresh ``python -m services.user`` (as shipped: log
level INFO, stderr to a file) driven by the same raw grpc.aio stub (16 calls in
flight), in the same run, round-robin over the configurations so drift in the
machine's load hits them all alike. The figure is the server process's
utime + stime over the measured calls divided by their number; a
configuration's cost is its median minus the baseline's (everything off).

Example::

    make bench-obs                                  # or: python -m bench._obs_cost
    BENCH_OBS_CALLS=20000 BENCH_OBS_ROUNDS=5 python -m bench._obs_cost
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc.aio

from bench._config import REPO
from bench._procs import read_cpu_ticks
from switchboard.user.v1 import user_pb2, user_service_pb2, user_service_pb2_grpc

__all__ = ["CONFIGS", "main"]

_TICK_US = 1_000_000 / os.sysconf("SC_CLK_TCK")
_LISTENING = re.compile(rb"user listening on \S+:(\d+)")
_IN_FLIGHT = 16
_OFF = ("--http-listen", "off", "--access-log", "errors")


@dataclass(frozen=True)
class Config:
    """One way to run the server: its flags and environment."""

    name: str
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()


CONFIGS = (
    Config("baseline: metrics, tracing, access log off", _OFF),
    Config("metrics on (/metrics side port)", ("--access-log", "errors")),
    Config("tracing on, no exporter", _OFF, (("OTEL_TRACES_EXPORTER", "none"),)),
    Config("access log all (the default)", ("--http-listen", "off")),
    Config("access log sampled:100", ("--http-listen", "off", "--access-log", "sampled:100")),
    Config("defaults: metrics + access log all", ()),
    Config("all on: metrics + tracing + access log", (), (("OTEL_TRACES_EXPORTER", "none"),)),
)


async def _start(config: Config, workdir: Path) -> tuple[asyncio.subprocess.Process, int]:
    log = workdir / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWITCHBOARD_", "OTEL_"))}
    env.update(config.env)
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "services.user", "--listen", "127.0.0.1:0", "--data-dir", str(workdir)),
            *config.args,
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=out,
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        match = _LISTENING.search(log.read_bytes())
        if match:
            return process, int(match[1])
        if process.returncode is not None:
            break
        await asyncio.sleep(0.05)  # a log file sends no event
    if process.returncode is None:
        process.kill()
    raise RuntimeError(f"user did not start:\n{log.read_text()[-2000:]}")


async def _drive(channel: grpc.aio.Channel, user_id: str, calls: int) -> None:
    stub = user_service_pb2_grpc.UserServiceStub(channel)
    remaining = calls
    request = user_service_pb2.GetUserRequest(id=user_id)

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await stub.GetUser(request, timeout=10)

    await asyncio.gather(*(worker() for _ in range(_IN_FLIGHT)))


async def measure(config: Config, calls: int, warmup: int) -> float:
    """Server CPU µs per GetUser under ``config``."""
    with tempfile.TemporaryDirectory(prefix="obs-cost-") as tmp:
        process, port = await _start(config, Path(tmp))
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = user_service_pb2_grpc.UserServiceStub(channel)
                user = user_pb2.User(email="bench@example.com", display_name="Bench")
                created = await stub.CreateUser(user_service_pb2.CreateUserRequest(user=user))
                await _drive(channel, created.user.id, warmup)
                before = read_cpu_ticks(process.pid)
                await _drive(channel, created.user.id, calls)
                used = read_cpu_ticks(process.pid) - before
        finally:
            process.terminate()
            await process.wait()
    return used * _TICK_US / calls


async def run(calls: int, warmup: int, rounds: int) -> dict[str, list[float]]:
    """Every configuration ``rounds`` times, interleaved; µs per call of each run."""
    figures: dict[str, list[float]] = {c.name: [] for c in CONFIGS}
    for round_no in range(rounds):
        for config in CONFIGS:
            figures[config.name].append(await measure(config, calls, warmup))
            print(f"round {round_no + 1}: {config.name}: {figures[config.name][-1]:.1f} µs",
                  file=sys.stderr, flush=True)  # fmt: skip
    return figures


def render(figures: dict[str, list[float]]) -> str:
    """A markdown table: median µs/call, and the cost over the baseline."""
    base = statistics.median(figures[CONFIGS[0].name])
    lines = [
        "| server configuration | CPU µs/call (median) | runs | cost vs baseline |",
        "|---|---:|---|---:|",
    ]
    for name, runs in figures.items():
        median = statistics.median(runs)
        shown = ", ".join(f"{r:.0f}" for r in runs)
        lines.append(f"| {name} | {median:.1f} | {shown} | {median - base:+.1f} |")
    return "\n".join(lines)


def main() -> int:
    """Run, print the table, write bench/results/obs-cost.{json,md}."""
    calls = int(os.environ.get("BENCH_OBS_CALLS", "6000"))
    rounds = int(os.environ.get("BENCH_OBS_ROUNDS", "3"))
    figures = asyncio.run(run(calls, warmup=calls // 5, rounds=rounds))
    table = render(figures)
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "obs-cost.json").write_text(json.dumps({"calls": calls, "figures": figures}, indent=2))
    (out / "obs-cost.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
