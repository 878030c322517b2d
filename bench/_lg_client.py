"""Load through the Switchboard client itself: GetUser by name, and failover.

The client is built the way a service builds it: ``Client`` with the registry's
address, ``UserClient.connect`` (resolve, then watch), calls with the default
deadline and retry policy. Setup waits until the client knows the expected
number of instances; nothing is measured before the warm-up.

Example::

    ops = await client_get_user_ops(stack, registry="127.0.0.1:50051", ids=ids,
                                    workers=32, expect=1)
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

from bench._runner import TICKS_PER_S, Failures, Op, run_once, sum_ticks
from bench._stats import Rep, percentile
from services.runtime import Client, ClientConfig, RegistryConfig
from services.user.client import UserClient

__all__ = ["client_get_user_ops", "failover"]

DISCOVERY_TIMEOUT_S = 30.0
AFTER_KILL_WINDOW_S = 1.0
POLL_S = 0.01


async def _user_client(stack: AsyncExitStack, registry: str, expect: Sequence[str]) -> UserClient:
    """A connected UserClient whose balancing set holds every address in ``expect``.

    With ``registry`` empty the client balances over exactly ``expect`` (static
    addresses, no discovery); otherwise it finds them through the registry.
    """
    if registry:
        config = ClientConfig(registry=RegistryConfig(addresses=(registry,)))
    else:
        config = ClientConfig(static={"user": tuple(expect)})
    client = await stack.enter_async_context(Client(config))
    users = await UserClient.connect(client)
    deadline = time.monotonic() + DISCOVERY_TIMEOUT_S
    while not set(expect) <= set(users.conn.addresses):
        if time.monotonic() > deadline:
            raise RuntimeError(f"client saw {users.conn.addresses}, expected {expect} instances")
        await asyncio.sleep(POLL_S)
    return users


def _get_user_ops(users: UserClient, ids: Sequence[str], workers: int) -> list[Op]:
    """GetUser through the typed client, each worker cycling over the ids from its own offset."""

    def make(offset: int) -> Op:
        order = itertools.cycle([*ids[offset:], *ids[:offset]])

        async def get() -> object:
            return await users.get_user(next(order))

        return get

    return [make(w * len(ids) // workers) for w in range(workers)]


async def client_get_user_ops(
    stack: AsyncExitStack,
    *,
    registry: str,
    ids: Sequence[str],
    workers: int,
    expect: Sequence[str],
) -> list[Op]:
    """The workers' ops for GetUser via the Switchboard client (see the module docstring)."""
    users = await _user_client(stack, registry, expect)
    return _get_user_ops(users, ids, workers)


def _timed_ops(ops: Sequence[Op], log: list[tuple[float, float]]) -> list[Op]:
    """Wrap ops so each successful call logs (start, latency)."""

    def wrap(op: Op) -> Op:
        async def timed() -> object:
            start = time.perf_counter()
            result = await op()
            log.append((start, time.perf_counter() - start))
            return result

        return timed

    return [wrap(op) for op in ops]


async def failover(spec: dict[str, Any]) -> dict[str, Any]:
    """One repetition: load over 3 instances, SIGKILL the victim a third of the way in.

    Reports the repetition (every failed call counted), the latency of the
    calls in flight at the kill or started within a second after it, and a
    timeline: calls and slowest call per 100 ms, by start time, around the kill.
    """
    failures = Failures()
    log: list[tuple[float, float]] = []
    async with AsyncExitStack() as stack:
        users = await _user_client(stack, spec["registry"], spec["expect"])
        victim = spec["victim_address"]
        if victim not in users.conn.addresses:
            raise RuntimeError(f"victim {victim} not among {users.conn.addresses}")
        ops = _get_user_ops(users, spec["ids"], int(spec["concurrency"]))
        await run_once(ops, float(spec["warmup_s"]), failures)
        rep, killed_at = await _kill_under_load(spec, _timed_ops(ops, log), failures)
    window = killed_at + AFTER_KILL_WINDOW_S
    # Calls in flight at the kill count too: they are the ones that meet the dead instance.
    after = sorted(1000 * lat for start, lat in log if start < window and start + lat > killed_at)
    return {
        "reps": [rep.to_json()],
        "failures": failures.to_json(),
        "extra": {
            "calls_around_kill": len(after),
            "p99_ms_around_kill": percentile(after, 99),
            "max_ms_around_kill": after[-1] if after else 0.0,
            "timeline": _timeline(log, killed_at),
        },
    }


def _timeline(log: list[tuple[float, float]], killed_at: float) -> list[list[float]]:
    """``[ms from the kill, calls, slowest ms]`` per 100 ms of start time, -0.3 s to +1 s."""
    buckets: dict[int, list[float]] = {}
    for start, latency in log:
        index = int((start - killed_at) * 10 // 1)
        if -3 <= index < 10:
            buckets.setdefault(index, []).append(1000 * latency)
    return [[i * 100.0, len(v), round(max(v), 1)] for i, v in sorted(buckets.items())]


async def _kill_under_load(
    spec: dict[str, Any], ops: list[Op], failures: Failures
) -> tuple[Rep, float]:
    duration = float(spec["duration_s"])
    killed_at = 0.0

    async def kill_later() -> None:
        nonlocal killed_at
        await asyncio.sleep(duration / 3)
        killed_at = time.perf_counter()
        os.kill(int(spec["victim_pid"]), signal.SIGKILL)

    killer = asyncio.create_task(kill_later())
    pids = [pid for pid in spec.get("pids", []) if pid != int(spec["victim_pid"])]
    ticks = sum_ticks(pids)
    latencies, errors, elapsed = await run_once(ops, duration, failures)
    await killer
    rep = Rep.of_latencies(latencies, errors, elapsed)
    return rep.with_cpu(sum_ticks(pids) - ticks, TICKS_PER_S), killed_at
