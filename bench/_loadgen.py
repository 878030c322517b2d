"""The Python grpc.aio load generator: ``python -m bench._loadgen < spec.json > result.json``.

It drives what ghz cannot: the Switchboard client itself, streams (KeepAlive,
etcd's LeaseKeepAlive, watch fan-out), failover, and the setup calls (seeding
users, registering instances). The bench starts it on the load core with one
JSON spec on stdin; it answers with one JSON object on stdout::

    {"reps": [Rep, ...], "failures": {"counts": {...}, "examples": {...}}, "extra": {...}}

Example spec: ``{"scenario": "rounds", "concurrency": 32, "warmup_s": 1, "duration_s": 3,
"reps": 3, "entries": [{"name": "echo", "kind": "stub_get_user", "target": "127.0.0.1:5001",
"ids": ["u1"], "pids": [1234]}]}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from types import ModuleType
from typing import Any

import grpc
import grpc.aio

from bench import _lg_ops as ops
from bench._etcd import load_stubs
from bench._lg_watch import (
    EtcdFanout,
    FanoutSpec,
    RegistryFanout,
    Target,
    XdsFanout,
    run_fanouts,
)
from bench._procs import read_memory
from bench._runner import Failures, Op, measure_rep, run_once
from bench._stats import Rep

__all__ = ["SCENARIOS", "main"]

Spec = dict[str, Any]
Result = dict[str, Any]
READY_TIMEOUT_S = 30.0
MEMORY_SETTLE_S = 0.5


async def _ready_channel(target: str) -> grpc.aio.Channel:
    channel = ops.own_channel(target)
    await asyncio.wait_for(channel.channel_ready(), READY_TIMEOUT_S)
    return channel


def _etcd(spec: Spec) -> tuple[ModuleType, ModuleType]:
    return load_stubs()


def _result(reps: list[Rep], failures: Failures, **extra: Any) -> Result:
    return {"reps": [r.to_json() for r in reps], "failures": failures.to_json(), "extra": extra}


# --- scenarios ---------------------------------------------------------------------------


async def seed_users(spec: Spec) -> Result:
    """Create ``count`` users; return their ids and one serialized User."""
    async with await _ready_channel(spec["target"]) as channel:
        users = await ops.create_users(channel, int(spec["count"]), spec["tag"])
    return _result(
        [], Failures(), ids=[u.id for u in users], sample=users[0].SerializeToString().hex()
    )


async def seed_product(spec: Spec) -> Result:
    """Create one product with ample stock for the seller; return its id."""
    async with await _ready_channel(spec["target"]) as channel:
        product = await ops.create_product(channel, spec["seller_id"], spec["tag"])
    return _result([], Failures(), id=product.id)


async def registry_setup(spec: Spec) -> Result:
    """Register ``count`` instances of ``service``; return the lease ids."""
    async with await _ready_channel(spec["target"]) as channel:
        leases = await ops.register_many(
            channel, spec["service"], int(spec["count"]), ttl_s=int(spec["ttl_s"])
        )
    return _result([], Failures(), leases=leases)


async def etcd_setup(spec: Spec) -> Result:
    """Grant a lease and put an instance per key, ``count`` times; return the lease ids."""
    async with await _ready_channel(spec["target"]) as channel:
        leases = await ops.etcd_grant_and_put(
            channel, _etcd(spec), spec["service"], int(spec["count"]), ttl_s=int(spec["ttl_s"])
        )
    return _result([], Failures(), leases=leases)


# --- rounds: several targets measured in turn, one repetition each per round -------------

Builder = Callable[[Spec, AsyncExitStack, int], Awaitable[list[Op]]]


async def _build_stub_get_user(entry: Spec, stack: AsyncExitStack, workers: int) -> list[Op]:
    channel = await stack.enter_async_context(await _ready_channel(entry["target"]))
    return ops.stub_get_user_ops(channel, entry["ids"], workers)


async def _build_registry_keepalive(entry: Spec, stack: AsyncExitStack, workers: int) -> list[Op]:
    channel = await stack.enter_async_context(await _ready_channel(entry["target"]))
    leases = await ops.register_many(channel, "keepalive", workers, ttl_s=300)
    return await ops.registry_keepalive_ops(channel, leases)


async def _build_etcd_keepalive(entry: Spec, stack: AsyncExitStack, workers: int) -> list[Op]:
    stubs = _etcd(entry)
    channel = await stack.enter_async_context(await _ready_channel(entry["target"]))
    leases = await ops.etcd_grant_and_put(channel, stubs, "keepalive", workers, ttl_s=300)
    return await ops.etcd_keepalive_ops(channel, stubs, leases)


async def _build_client_get_user(entry: Spec, stack: AsyncExitStack, workers: int) -> list[Op]:
    # Imported here: only the client cases need the client runtime.
    from bench._lg_client import client_get_user_ops

    return await client_get_user_ops(
        stack, registry=entry["registry"], ids=entry["ids"], workers=workers, expect=entry["expect"]
    )


BUILDERS: dict[str, Builder] = {
    "client_get_user": _build_client_get_user,
    "stub_get_user": _build_stub_get_user,
    "registry_keepalive": _build_registry_keepalive,
    "etcd_keepalive": _build_etcd_keepalive,
}


async def rounds(spec: Spec) -> Result:
    """Measure each entry in turn, one repetition per round, so noise hits them alike.

    Each entry gets ``concurrency`` workers (streams) of its own, warmed up
    before the first round. The result maps entry names to their own results.
    """
    workers = int(spec["concurrency"])
    async with AsyncExitStack() as stack:
        entries = {
            e["name"]: (e, await BUILDERS[e["kind"]](e, stack, workers)) for e in spec["entries"]
        }
        failures = {name: Failures() for name in entries}
        for name, (_entry, entry_ops) in entries.items():
            await run_once(entry_ops, float(spec["warmup_s"]), failures[name])
        measured: dict[str, list[Rep]] = {name: [] for name in entries}
        for _ in range(int(spec["reps"])):
            for name, (entry, entry_ops) in entries.items():
                pids = entry.get("pids", [])
                rep = await measure_rep(entry_ops, float(spec["duration_s"]), pids, failures[name])
                measured[name].append(rep)
    return {"entries": {name: _result(measured[name], failures[name]) for name in entries}}


def _fanout_target(entry: Spec, connections: int) -> Target:
    if entry["kind"] == "registry":
        return RegistryFanout(entry["target"], connections)
    if entry["kind"] == "xds":
        return XdsFanout(entry["target"], connections)
    return EtcdFanout(entry["target"], connections, _etcd(entry))


async def fanout_rounds(spec: Spec) -> Result:
    """Watch fan-out on each entry (registry, etcd) in interleaved rounds."""
    fanout = FanoutSpec(
        watchers=int(spec["watchers"]),
        connections=int(spec["connections"]),
        events=int(spec["events"]),
        reps=int(spec["reps"]),
        gap_s=float(spec["gap_s"]),
    )
    targets = {
        e["name"]: (_fanout_target(e, fanout.connections), e.get("pids", []))
        for e in spec["entries"]
    }
    outcomes = await run_fanouts(targets, fanout)
    return {
        "entries": {
            name: _result(reps, failures, **extra)
            for name, (reps, failures, extra) in outcomes.items()
        }
    }


Register = Callable[[grpc.aio.Channel, str, int, int], Awaitable[object]]


async def _memory(spec: Spec, register: Register) -> Result:
    """Grow the store to each size in ``sizes``; note its RSS and peak RSS at each."""
    pid, per_service, points, done = int(spec["pid"]), int(spec["per_service"]), [], 0
    async with await _ready_channel(spec["target"]) as channel:
        await asyncio.sleep(MEMORY_SETTLE_S)
        base = read_memory(pid)
        points.append({"instances": 0, "rss": base.rss, "hwm": base.hwm, "seconds": 0.0})
        for size in spec["sizes"]:
            started = time.perf_counter()
            while done < size:
                count = min(per_service - done % per_service, size - done)
                await register(channel, f"mem-{done // per_service:04d}", count, done)
                done += count
            seconds = time.perf_counter() - started
            await asyncio.sleep(MEMORY_SETTLE_S)
            memory = read_memory(pid)
            points.append(
                {"instances": size, "rss": memory.rss, "hwm": memory.hwm, "seconds": seconds}
            )
    return _result([], Failures(), points=points)


async def registry_memory(spec: Spec) -> Result:
    """Registry RSS at each size (services of ``per_service`` instances)."""

    async def register(channel: grpc.aio.Channel, service: str, count: int, start: int) -> object:
        return await ops.register_many(
            channel, service, count, ttl_s=int(spec["ttl_s"]), start=start
        )

    return await _memory(spec, register)


async def etcd_memory(spec: Spec) -> Result:
    """etcd RSS at each size: one lease and one key per instance, as the registry holds."""
    stubs = _etcd(spec)

    async def register(channel: grpc.aio.Channel, service: str, count: int, start: int) -> object:
        return await ops.etcd_grant_and_put(
            channel, stubs, service, count, ttl_s=int(spec["ttl_s"]), start=start
        )

    return await _memory(spec, register)


async def _failover(spec: Spec) -> Result:
    """SIGKILL one of three instances under load (see ``bench._lg_client.failover``)."""
    from bench._lg_client import failover

    return await failover(spec)


SCENARIOS: dict[str, Callable[[Spec], Coroutine[Any, Any, Result]]] = {
    "seed_users": seed_users,
    "seed_product": seed_product,
    "failover": _failover,
    "registry_setup": registry_setup,
    "etcd_setup": etcd_setup,
    "rounds": rounds,
    "fanout_rounds": fanout_rounds,
    "registry_memory": registry_memory,
    "etcd_memory": etcd_memory,
}


def main() -> None:
    """Read the spec from stdin, run its scenario, write the result to stdout."""
    spec = json.loads(sys.stdin.read())
    result = asyncio.run(SCENARIOS[spec["scenario"]](spec))
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    main()
