"""The bench's phases after the stack is up: Python-generator cases, fan-out, scaling,
failover and memory. Each phase fills the results of its cases; a phase that
fails marks its unfilled cases with the reason and the run goes on.

Example::

    await python_rounds(stack, results, client_entries(stack), servers)
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from bench._model import CaseResult
from bench._procs import Proc
from bench._stack import Stack, loadgen, server_env, start_etcd, start_user
from bench._stats import Rep

__all__ = [
    "client_entries",
    "client_entry",
    "keepalive_entries",
    "fanout",
    "failover",
    "fill",
    "memory",
    "python_rounds",
    "scaling",
]


def fill(result: CaseResult, answer: dict[str, Any], servers: Sequence[Proc]) -> None:
    """Copy a load-generator answer (reps, failures, extra) into a case result."""
    result.reps += [Rep.from_json(rep) for rep in answer.get("reps", [])]
    result.failures = _merge(result.failures, answer.get("failures", {}))
    result.metrics.update(answer.get("extra", {}))
    peaks = [proc.memory().hwm for proc in servers if proc.running]
    if peaks:
        result.peak_rss = max(peaks + [result.peak_rss or 0])


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    counts = dict(old.get("counts", {}))
    for kind, count in new.get("counts", {}).items():
        counts[kind] = counts.get(kind, 0) + count
    return {"counts": counts, "examples": old.get("examples", {}) | new.get("examples", {})}


def _timing(stack: Stack) -> dict[str, Any]:
    config = stack.config
    return {
        "concurrency": config.concurrency,
        "warmup_s": config.warmup_s,
        "duration_s": config.duration_s,
        "reps": config.reps,
    }


def client_entry(stack: Stack, name: str) -> dict[str, Any]:
    """A rounds entry: GetUser via the Switchboard client over the live user instances."""
    assert stack.registry is not None
    return {
        "name": name,
        "kind": "client_get_user",
        "registry": stack.registry.address,
        "ids": stack.user_ids,
        "expect": [proc.address for proc in stack.users if proc.running],
        "pids": [*stack.user_pids(), stack.registry.pid],
    }


def client_entries(stack: Stack) -> list[dict[str, Any]]:
    """Rounds entries for the echo (raw stub), the user service (raw stub) and the client."""
    entries = []
    if stack.echo_aio is not None:
        echo = stack.echo_aio
        entries.append(_stub_entry("echo.aio.py", echo, stack.user_ids or ["echo"]))
    if stack.users and stack.user_ids:
        entries.append(_stub_entry("user.get.stub", stack.users[0], stack.user_ids))
        entries.append(client_entry(stack, "user.get.client"))
    return [e for e in entries if stack.config.wants(str(e["name"]))]


def _stub_entry(name: str, proc: Proc, ids: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "stub_get_user",
        "target": proc.address,
        "ids": ids,
        "pids": [proc.pid],
    }


def keepalive_entries(stack: Stack) -> list[dict[str, Any]]:
    """Rounds entries for KeepAlive streams on the registry and on etcd."""
    entries: list[dict[str, Any]] = []
    if stack.registry is not None:
        entries.append(
            {
                "name": "registry.keepalive.py",
                "kind": "registry_keepalive",
                "target": stack.registry.address,
                "pids": [stack.registry.pid],
            }
        )
    if stack.etcd is not None:
        entries.append(
            {
                "name": "etcd.keepalive.py",
                "kind": "etcd_keepalive",
                "target": stack.etcd.address,
                "pids": [stack.etcd.pid],
            }
        )
    if stack.registry_etcd is not None and stack.etcd is not None:
        entries.append(
            {
                "name": "registry_etcd.keepalive.py",
                "kind": "registry_keepalive",
                "target": stack.registry_etcd.address,
                "pids": [stack.registry_etcd.pid, stack.etcd.pid],
            }
        )
    return [e for e in entries if stack.config.wants(e["name"])]


async def python_rounds(
    stack: Stack,
    results: dict[str, CaseResult],
    entries: Sequence[dict[str, Any]],
    servers: Sequence[Proc],
) -> None:
    """Measure the entries in interleaved rounds in one load-generator process."""
    spec = {"scenario": "rounds", "entries": list(entries), **_timing(stack)}
    answer = await loadgen(stack, spec)
    _fill_entries(results, answer, entries, servers)


def _fill_entries(
    results: dict[str, CaseResult],
    answer: dict[str, Any],
    entries: Sequence[dict[str, Any]],
    servers: Sequence[Proc],
) -> None:
    """Fill each entry's case; its peak RSS is that of the servers among its pids."""
    pids = {entry["name"]: set(entry.get("pids", [])) for entry in entries}
    for name, part in answer["entries"].items():
        fill(results[name], part, [p for p in servers if p.pid in pids[name]])


async def fanout(stack: Stack, results: dict[str, CaseResult]) -> None:
    """Watch fan-out to ``config.watchers`` watchers: registry Watch, registry xDS (EDS) and
    etcd in the same rounds."""
    config = stack.config
    etcd_pids = [stack.etcd.pid] if stack.etcd is not None else []
    entries = [
        {
            "name": key,
            "kind": kind,
            "target": proc.address,
            "pids": [proc.pid, *(etcd_pids if key.startswith("registry_etcd") else [])],
        }
        for key, kind, proc in (
            ("registry.watch1000.py", "registry", stack.registry),
            ("registry.xds1000.py", "xds", stack.registry),
            ("etcd.watch1000.py", "etcd", stack.etcd),
            ("registry_etcd.watch1000.py", "registry", stack.registry_etcd),
        )
        if proc is not None and stack.config.wants(key)
    ]
    spec = {
        "scenario": "fanout_rounds",
        "entries": entries,
        "watchers": config.watchers,
        "connections": config.watch_connections,
        "events": config.watch_events,
        "reps": config.reps,
        "gap_s": config.watch_gap_s,
    }
    answer = await loadgen(stack, spec)
    servers = [p for p in (stack.registry, stack.etcd, stack.registry_etcd) if p is not None]
    _fill_entries(results, answer, entries, servers)


async def scaling(stack: Stack, results: dict[str, CaseResult]) -> None:
    """GetUser via the client over the first 1, 2, 3 instances, in interleaved rounds.

    Each size is a client given that many instances' addresses (no discovery,
    the same client and round_robin), so all sizes run in the same rounds and
    their ratios hold on a noisy machine; the discovery path is ``user.get.client``.
    """
    while len([p for p in stack.users if p.running]) < stack.config.scaling_instances:
        await start_user(stack)
    live = [p for p in stack.users if p.running]
    entries = []
    for count in range(1, stack.config.scaling_instances + 1):
        entry = client_entry(stack, f"scale.user.{count}")
        entry |= {"registry": "", "expect": [p.address for p in live[:count]]}
        entries.append(entry)
    await python_rounds(stack, results, entries, live)


async def failover(stack: Stack, results: dict[str, CaseResult]) -> None:
    """Each repetition SIGKILLs the newest of three instances under load, then replaces it."""
    assert stack.registry is not None
    result = results["failover.kill1of3"]
    for _ in range(stack.config.reps):
        while len([p for p in stack.users if p.running]) < 3:
            await start_user(stack)
        victim = stack.users[-1]
        spec = {
            "scenario": "failover",
            "victim_pid": victim.pid,
            "victim_address": victim.address,
            **client_entry(stack, result.key),
            **_timing(stack),
            "duration_s": stack.config.failover_s,
        }
        answer = await loadgen(stack, spec)
        fill(result, answer, [p for p in stack.users if p.running])
        for name, value in answer.get("extra", {}).items():
            result.metrics.setdefault(f"{name}_by_rep", []).append(value)
        await stack.procs.stop(victim)  # reaps it (it is already dead)
        stack.users.remove(victim)
    for name in list(result.metrics):
        if not name.endswith("_by_rep"):
            del result.metrics[name]  # the last repetition's copy; the lists have them all


async def memory(stack: Stack, results: dict[str, CaseResult], key: str) -> None:
    """Fill a fresh registry (or etcd) to each size and note its RSS at each."""
    config = stack.config
    if key == "memory.registry":
        argv = [sys.executable, "-m", "registry", "--listen", "127.0.0.1:0"]
        proc = await stack.procs.start("registry-memory", argv, env=server_env())
        scenario = "registry_memory"
    else:
        started = await start_etcd(stack, "etcd-memory")
        if started is None:
            results[key].error = stack.missing.get("etcd", "etcd unavailable")
            return
        proc, scenario = started, "etcd_memory"
    spec = {
        "scenario": scenario,
        "target": proc.address,
        "pid": proc.pid,
        "sizes": list(config.memory_sizes),
        "per_service": config.memory_per_service,
        "ttl_s": 300,
    }
    try:
        answer = await loadgen(stack, spec)
    finally:
        await stack.procs.stop(proc)
    points = answer["extra"]["points"]
    result = results[key]
    result.metrics["points"] = points
    result.reps = _fill_reps(points)
    result.peak_rss = max(point["hwm"] for point in points)


def _fill_reps(points: list[dict[str, Any]]) -> list[Rep]:
    """One repetition per filling step: instances added over the seconds it took."""
    reps = []
    for before, after in zip(points, points[1:], strict=False):
        added = after["instances"] - before["instances"]
        reps.append(Rep(added, 0, after["seconds"], 0.0, 0.0, 0.0))
    return reps
