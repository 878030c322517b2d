"""One bench run, start to end: pin, start the stack, seed, run every phase, stop everything.

The bench process pins itself to the load core first, so every load generator
it starts (ghz, the Python generator) inherits that core; servers are started
with ``taskset`` on the server core. Every process lives in a ``Procs`` block,
so all of them are stopped however the run ends.

Example::

    results, stack_info = await run_bench(BenchConfig.quick(), logs_dir)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from bench import _phases as phases
from bench._cases import CASES
from bench._config import REPO, BenchConfig
from bench._ghz_cases import ghz_cases, run_rounds
from bench._model import CaseResult
from bench._procs import CpuPlan, Procs, plan_cpus
from bench._stack import (
    Stack,
    loadgen,
    start_echo,
    start_etcd,
    start_product,
    start_registry,
    start_registry_etcd,
    start_user,
)

__all__ = ["GHZ", "NOT_SELECTED", "brief", "run_bench", "run_sync"]

NOT_SELECTED = "not selected (BENCH_ONLY)"

GHZ = REPO / ".tools" / "bin" / "ghz"
Step = Callable[[], Awaitable[object]]


def brief(err: BaseException, limit: int = 400) -> str:
    """One line for a report cell: the error's type and message, newlines folded.

    Example: ``brief(RuntimeError("a\nb")) == "RuntimeError: a | b"``.
    """
    text = " | ".join(line.strip() for line in str(err).splitlines() if line.strip())
    return f"{type(err).__name__}: {text}"[:limit]


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def _step(stack: Stack, component: str, step: Step) -> bool:
    """Run one setup step; on failure note the component as missing (with why) and go on."""
    try:
        await step()
    except Exception as err:
        stack.missing[component] = brief(err)
        _log(f"{component} unavailable: {stack.missing[component]}")
        return False
    return True


async def _seed_users(stack: Stack) -> None:
    spec = {
        "scenario": "seed_users",
        "target": stack.users[0].address,
        "count": stack.config.seed_users,
        "tag": f"{os.getpid()}",
    }
    answer = await loadgen(stack, spec)
    stack.user_ids = answer["extra"]["ids"]
    stack.sample_user = bytes.fromhex(answer["extra"]["sample"])
    stack.seller_id = stack.user_ids[0]


async def _seed_product(stack: Stack) -> None:
    assert stack.product is not None
    spec = {
        "scenario": "seed_product",
        "target": stack.product.address,
        "seller_id": stack.seller_id,
        "tag": f"{os.getpid()}",
    }
    stack.product_id = (await loadgen(stack, spec))["extra"]["id"]


async def _setup_registry(stack: Stack) -> None:
    assert stack.registry is not None
    base = {"scenario": "registry_setup", "target": stack.registry.address, "ttl_s": 300}
    await loadgen(stack, base | {"service": "resolve-100", "count": stack.config.resolve_instances})
    answer = await loadgen(stack, base | {"service": "heartbeat", "count": 1})
    stack.heartbeat_lease = answer["extra"]["leases"][0]


async def _setup_etcd(stack: Stack) -> None:
    assert stack.etcd is not None
    spec = {
        "scenario": "etcd_setup",
        "target": stack.etcd.address,
        "service": "resolve-100",
        "count": stack.config.resolve_instances,
        "ttl_s": 300,
    }
    stack.etcd_lease = (await loadgen(stack, spec))["extra"]["leases"][0]


async def _start_main_etcd(stack: Stack) -> None:
    stack.etcd = await start_etcd(stack)


async def _setup_registry_etcd(stack: Stack) -> None:
    await start_registry_etcd(stack)
    assert stack.registry_etcd is not None
    target = stack.registry_etcd.address
    base = {"scenario": "registry_setup", "target": target, "ttl_s": 300}
    await loadgen(stack, base | {"service": "resolve-100", "count": stack.config.resolve_instances})
    answer = await loadgen(stack, base | {"service": "heartbeat", "count": 1})
    stack.registry_etcd_lease = answer["extra"]["leases"][0]


def _needed(stack: Stack, *prefixes: str) -> bool:
    """Whether any selected case starts with one of ``prefixes`` (BENCH_ONLY)."""
    return any(stack.config.wants(key) for key in CASES if key.startswith(prefixes))


async def _start_stack(stack: Stack) -> None:
    """Start and seed what the cases need; whatever fails is noted in ``stack.missing``."""
    if not GHZ.exists():
        stack.missing["ghz"] = f"{GHZ} is missing (run `make tools-ghz`)"
    else:
        stack.ghz = GHZ
    if not await _step(stack, "registry", lambda: start_registry(stack)):
        return
    await _step(stack, "etcd", lambda: _start_main_etcd(stack))
    if stack.etcd is not None:
        await _step(stack, "etcd", lambda: _setup_etcd(stack))
        if _needed(stack, "registry_etcd"):
            await _step(stack, "registry_etcd", lambda: _setup_registry_etcd(stack))
    users = _needed(stack, "user", "product", "scale", "failover", "echo.aio.py")
    if users and await _step(stack, "user", lambda: start_user(stack)):
        await _step(stack, "user", lambda: _seed_users(stack))
    if stack.user_ids and await _step(stack, "product", lambda: start_product(stack)):
        await _step(stack, "product", lambda: _seed_product(stack))
    if _needed(stack, "echo"):
        await _step(stack, "echo-aio", lambda: start_echo(stack, "aio"))
        await _step(stack, "echo-sync", lambda: start_echo(stack, "sync"))
    await _step(stack, "registry", lambda: _setup_registry(stack))


async def _phase(results: dict[str, CaseResult], keys: Iterable[str], name: str, run: Step) -> None:
    """Run a phase; if it fails, its cases that have no figures yet get the reason."""
    _log(name)
    try:
        await run()
    except Exception as err:
        _log(f"{name} failed: {err}")
        for key in keys:
            if not results[key].reps and results[key].error is None:
                results[key].error = f"{name} failed: {brief(err)}"


async def _main_phases(stack: Stack, results: dict[str, CaseResult]) -> None:
    procs = (stack.registry, stack.etcd, stack.registry_etcd, stack.echo_aio, *stack.users)
    servers = [p for p in procs if p]
    if stack.ghz is not None:
        cases = ghz_cases(stack)
        await _phase(
            results, [c.key for c in cases], "ghz cases", lambda: run_rounds(stack, cases, results)
        )
    entries = phases.client_entries(stack)
    if entries:
        await _phase(
            results,
            [e["name"] for e in entries],
            "python: echo vs raw stub vs client",
            lambda: phases.python_rounds(stack, results, entries, servers),
        )
    keepalives = phases.keepalive_entries(stack)
    if keepalives:
        await _phase(
            results,
            [e["name"] for e in keepalives],
            "python: keepalive streams",
            lambda: phases.python_rounds(stack, results, keepalives, servers),
        )
    fanout_keys = [
        key
        for key in (
            "registry.watch1000.py",
            "registry.xds1000.py",
            "etcd.watch1000.py",
            "registry_etcd.watch1000.py",
        )
        if stack.config.wants(key)
    ]
    if fanout_keys:
        await _phase(results, fanout_keys, "watch fan-out", lambda: phases.fanout(stack, results))
    if not (stack.users and stack.user_ids):
        return
    if _needed(stack, "scale"):
        scale_keys = [f"scale.user.{n}" for n in range(1, stack.config.scaling_instances + 1)]
        await _phase(results, scale_keys, "scaling", lambda: phases.scaling(stack, results))
    if _needed(stack, "failover"):
        await _phase(
            results, ["failover.kill1of3"], "failover", lambda: phases.failover(stack, results)
        )


async def _memory_phases(stack: Stack, results: dict[str, CaseResult]) -> None:
    for key in ("memory.registry", "memory.etcd"):
        if not stack.config.wants(key):
            continue
        if key == "memory.etcd" and "etcd" in stack.missing:
            continue  # explained with the other etcd cases
        await _phase(results, [key], key, _memory_step(stack, results, key))


def _memory_step(stack: Stack, results: dict[str, CaseResult], key: str) -> Step:
    return lambda: phases.memory(stack, results, key)


def _explain_missing(stack: Stack, results: dict[str, CaseResult]) -> None:
    """Every case without figures gets a reason: what it needed that was missing."""
    needs = {  # first match wins: the longer prefixes first
        "registry_etcd": "registry_etcd",
        "echo.aio": "echo-aio",
        "echo.sync": "echo-sync",
        "user": "user",
        "scale": "user",
        "failover": "user",
        "product": "product",
        "registry": "registry",
        "memory.registry": "registry",
        "etcd": "etcd",
        "memory.etcd": "etcd",
    }
    for key, result in results.items():
        if result.ran or result.error:
            continue
        component = next((v for k, v in needs.items() if key.startswith(k)), "")
        ghz = stack.missing.get("ghz") if result.generator == "ghz" else None
        reason = stack.missing.get(component) or ghz or "the case did not run"
        result.error = f"not run: {reason}"


def _pin_to_load_core(cpus: CpuPlan) -> None:
    if cpus.load is not None:
        os.sched_setaffinity(0, {cpus.load})


async def run_bench(
    config: BenchConfig, logs: Path
) -> tuple[dict[str, CaseResult], dict[str, Any]]:
    """Run every case; return the results by key and facts about the run (cores, idle RSS)."""
    cpus = plan_cpus()
    _pin_to_load_core(cpus)
    results = {key: info.result() for key, info in CASES.items()}
    for key, result in results.items():
        if not config.wants(key):
            result.error = NOT_SELECTED
    work = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    procs = Procs(logs, cpus)
    stack = Stack(config, procs, work, logs)
    _stop_on_sigterm()
    try:
        async with procs:
            _log(f"starting the stack (server core {cpus.server}, load core {cpus.load})")
            await _start_stack(stack)
            await _main_phases(stack, results)
            await procs.stop_all()  # the memory cases get the machine to themselves
            await _memory_phases(stack, results)
        _explain_missing(stack, results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    facts = {
        "cpus": {"server": cpus.server, "load": cpus.load, "pinned": cpus.pinned},
        "idle_rss": {name: m.rss for name, m in stack.idle.items() if name != "etcd-memory"},
        "missing": stack.missing,
    }
    return results, facts


def _stop_on_sigterm() -> None:
    """SIGTERM cancels the run like Ctrl-C does, so every process is stopped on the way out."""
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


def run_sync(config: BenchConfig, logs: Path) -> tuple[dict[str, CaseResult], dict[str, Any]]:
    """``run_bench`` on a fresh event loop (Ctrl-C cancels it, and every process is stopped)."""
    return asyncio.run(run_bench(config, logs))
