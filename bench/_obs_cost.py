"""What metrics, tracing and the access log cost: server CPU µs per GetUser, each off and on.

Every configuration is a fresh ``python -m services.user`` (as shipped: log
level INFO, stderr to a file) driven by the same raw grpc.aio stub (16 calls in
flight), in the same run, round-robin over the configurations so drift in the
machine's load hits them all alike. The figure is the server process's
utime + stime over the measured calls divided by their number; a
configuration's cost is its median minus the baseline's (everything off).

Whole-process figures on a shared machine move by tens of µs from run to run,
more than the costs measured; so a second table times the per-call code
itself in this process (``MethodObserver.begin`` … ``finish``: what the server
wrapper adds per call for each signal), in CPU time over 20,000 calls.

Example::

    make bench-obs                                  # or: python -m bench._obs_cost
    BENCH_OBS_CALLS=20000 BENCH_OBS_ROUNDS=5 python -m bench._obs_cost
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import grpc
import grpc.aio

from harness import REPO, Launcher, Process, read_cpu_ticks
from services.runtime import tracing
from services.runtime.logs import ACCESS_LOG
from services.runtime.server._observe import MethodObserver
from switchboard.user.v1 import user_pb2, user_service_pb2, user_service_pb2_grpc

__all__ = ["CONFIGS", "main"]

_TICK_US = 1_000_000 / os.sysconf("SC_CLK_TCK")
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


async def _start(config: Config, launcher: Launcher, workdir: Path) -> Process:
    args = ("--data-dir", str(workdir), *config.args)
    return await launcher.start("services.user", *args, env=dict(config.env))


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
        # The server must not trace or export because of the caller's OTEL_* settings.
        async with Launcher(Path(tmp), drop=["OTEL_"]) as launcher:
            process = await _start(config, launcher, Path(tmp))
            async with grpc.aio.insecure_channel(process.address) as channel:
                stub = user_service_pb2_grpc.UserServiceStub(channel)
                user = user_pb2.User(email="bench@example.com", display_name="Bench")
                created = await stub.CreateUser(user_service_pb2.CreateUserRequest(user=user))
                await _drive(channel, created.user.id, warmup)
                before = read_cpu_ticks(process.pid)
                await _drive(channel, created.user.id, calls)
                used = read_cpu_ticks(process.pid) - before
            await process.stop()
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


_MICRO_CALLS = 20_000
_TRACEPARENT = (("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),)


def _time_calls(call: Callable[[], None]) -> float:
    call()
    start = time.process_time()
    for _ in range(_MICRO_CALLS):
        call()
    return (time.process_time() - start) / _MICRO_CALLS * 1e6


async def micro(sink: IO[str]) -> dict[str, float]:
    """CPU µs of the wrapper's per-call observation code, per signal, in this process.

    Runs on a loop, as in a server: the access log's buffer is flushed by a timer.
    ``sink`` stands in for stderr.
    """
    path = "/switchboard.user.v1.UserService/GetUser"
    plain = MethodObserver(path, request_streaming=False, response_streaming=False, metrics=False)
    metered = MethodObserver(path, request_streaming=False, response_streaming=False, metrics=True)

    def call(observer: MethodObserver) -> Callable[[], None]:
        def once() -> None:
            span = observer.begin(_TRACEPARENT)
            observer.succeeded()
            observer.finish(grpc.StatusCode.OK, 0.0003, "0123456789abcdef", "ipv4:1.2.3.4:5", span)

        return once

    figures: dict[str, float] = {}
    logging.getLogger("switchboard.access").setLevel(logging.INFO)
    ACCESS_LOG.configure("errors", stream=sink, json_lines=False)
    figures["nothing on"] = _time_calls(call(plain))
    figures["metrics"] = _time_calls(call(metered))
    tracing.enable_propagation()
    figures["tracing, no exporter (trace context only)"] = _time_calls(call(plain))
    tracing.enable_tracing("bench")
    figures["tracing, SDK spans recorded (no processor)"] = _time_calls(call(plain))
    tracing.shutdown_tracing()
    ACCESS_LOG.configure("all", stream=sink, json_lines=False)
    figures["access log all, text"] = _time_calls(call(plain))
    ACCESS_LOG.configure("all", stream=sink, json_lines=True)
    figures["access log all, json"] = _time_calls(call(plain))
    ACCESS_LOG.configure("sampled:100", stream=sink, json_lines=False)
    figures["access log sampled:100"] = _time_calls(call(plain))
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.getLogger("switchboard.access").addHandler(handler)
    ACCESS_LOG.configure("all", stream=None, json_lines=False)  # through ``logging``
    figures["access log through logging (the old path)"] = _time_calls(call(plain))
    logging.getLogger("switchboard.access").removeHandler(handler)
    return figures


def render_micro(figures: dict[str, float]) -> str:
    """A markdown table of :func:`micro`'s figures and their cost over "nothing on"."""
    base = figures["nothing on"]
    lines = ["| per-call code, in process | CPU µs/call | cost |", "|---|---:|---:|"]
    lines += [f"| {name} | {us:.2f} | {us - base:+.2f} |" for name, us in figures.items()]
    return "\n".join(lines)


def main() -> int:
    """Run, print the tables, write bench/results/obs-cost.{json,md}."""
    calls = int(os.environ.get("BENCH_OBS_CALLS", "6000"))
    rounds = int(os.environ.get("BENCH_OBS_ROUNDS", "3"))
    figures = asyncio.run(run(calls, warmup=calls // 5, rounds=rounds))
    with open(os.devnull, "w") as sink:
        code = asyncio.run(micro(sink))
    table = render(figures) + "\n\n" + render_micro(code)
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    summary = {"calls": calls, "figures": figures, "per_call_code": code}
    (out / "obs-cost.json").write_text(json.dumps(summary, indent=2))
    (out / "obs-cost.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
