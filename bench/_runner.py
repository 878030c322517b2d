"""The Python load generator's closed loop: N workers, each calling as fast as answers come.

Each worker owns one operation (a unary call, or one request/response on its own
stream) and repeats it until the repetition's time is up (and never more than
``MAX_CALLS_PER_WORKER`` times). Latency is measured per call around the await;
failed calls are counted by status, not timed. Server CPU comes from the tick
deltas of the given pids over the repetition, the generator's own CPU from
``time.process_time``.

Example::

    failures = Failures()
    await run_once(ops, 1.0, failures)                       # warm-up, not measured
    rep = await measure_rep(ops, 3.0, pids=[server_pid], failures=failures)
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import grpc

from bench._procs import read_cpu_ticks
from bench._stats import Rep

__all__ = [
    "MAX_CALLS_PER_WORKER",
    "TICKS_PER_S",
    "Failures",
    "Op",
    "error_kind",
    "measure_rep",
    "run_once",
    "sum_ticks",
]

Op = Callable[[], Awaitable[object]]
MAX_CALLS_PER_WORKER = 2_000_000
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass
class Failures:
    """Failed calls by kind, with the first message of each kind."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def add(self, err: BaseException) -> None:
        """Count one failure."""
        kind = error_kind(err)
        self.counts[kind] += 1
        self.examples.setdefault(kind, str(err)[:300])

    def to_json(self) -> dict[str, object]:
        """Counts and examples as plain data."""
        return {"counts": dict(self.counts), "examples": self.examples}


def error_kind(err: BaseException) -> str:
    """``UNAVAILABLE`` for a gRPC error, else the exception's class name."""
    if isinstance(err, grpc.aio.AioRpcError):
        return err.code().name
    return type(err).__name__


def sum_ticks(pids: Sequence[int]) -> int:
    """CPU ticks of all ``pids`` together."""
    return sum(read_cpu_ticks(pid) for pid in pids)


async def run_once(
    ops: Sequence[Op], duration_s: float, failures: Failures
) -> tuple[list[float], int, float]:
    """Run every op in its own worker for ``duration_s``: (latencies, errors, elapsed)."""
    latencies: list[float] = []
    errors = 0
    clock = time.perf_counter
    stop_at = clock() + duration_s

    async def worker(op: Op) -> None:
        nonlocal errors
        for _ in range(MAX_CALLS_PER_WORKER):
            start = clock()
            if start >= stop_at:
                return
            try:
                await op()
            except Exception as err:  # a failed call is a figure, not a crash
                errors += 1
                failures.add(err)
                continue
            latencies.append(clock() - start)

    began = clock()
    await asyncio.gather(*(worker(op) for op in ops))
    return latencies, errors, clock() - began


async def measure_rep(
    ops: Sequence[Op], duration_s: float, pids: Sequence[int], failures: Failures
) -> Rep:
    """One measured repetition, with server CPU (of ``pids``) and the generator's own CPU."""
    ticks, cpu = sum_ticks(pids), time.process_time()
    latencies, errors, elapsed = await run_once(ops, duration_s, failures)
    rep = Rep.of_latencies(latencies, errors, elapsed)
    return rep.with_cpu(sum_ticks(pids) - ticks, TICKS_PER_S, time.process_time() - cpu)
