"""The cases ghz drives, and how they run: warm-up, then rounds of one repetition each.

Running every case once per round (instead of all repetitions of one case,
then the next) means a burst of noise on the machine lands on all of them
alike, so the ratios between cases hold.

Example::

    cases, missing = ghz_cases(stack)
    results = await run_rounds(stack, cases)
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bench._config import REPO
from bench._etcd import ETCD_IMPORTS, ETCD_PROTO
from bench._ghz import GhzCall, GhzLoad, run_ghz
from bench._lg_ops import etcd_prefix
from bench._model import CaseResult
from bench._procs import Proc, read_cpu_ticks
from bench._runner import TICKS_PER_S
from bench._stack import Stack
from bench._stats import Rep

__all__ = ["GhzCase", "ghz_cases", "run_rounds"]

PROTOS = REPO / "protos"
USER_PROTO = PROTOS / "switchboard/user/v1/user_service.proto"
PRODUCT_PROTO = PROTOS / "switchboard/product/v1/product_service.proto"
REGISTRY_PROTO = PROTOS / "switchboard/registry/v1/registry_service.proto"
BACKGROUND_LEAD_S = 0.3
STREAM_MESSAGES = 100  # renewals per KeepAlive stream that ghz sends (pipelined)


@dataclass(frozen=True)
class GhzCase:
    """One ghz case: where, what, how hard, whose CPU; optionally a background load."""

    key: str
    target: str
    call: GhzCall
    load: GhzLoad
    servers: tuple[Proc, ...]
    background: GhzCall | None = None
    background_load: GhzLoad | None = None
    messages: int = 1


def _call(proto: Path, method: str, data: object) -> GhzCall:
    return GhzCall(proto=proto, call=method, data=json.dumps(data), import_paths=(PROTOS,))


def _etcd_call(method: str, data: object) -> GhzCall:
    """A call of etcd's API (``KV.Range``) from the project's etcd proto subset."""
    return GhzCall(
        proto=ETCD_PROTO,
        call=f"etcdserverpb.{method}",
        data=json.dumps(data),
        import_paths=(ETCD_IMPORTS,),
    )


def _get_users(stack: Stack) -> GhzCall:
    """GetUser of every seeded user in turn (ghz sends a JSON array round-robin)."""
    ids = stack.user_ids or ["echo"]
    return _call(USER_PROTO, "switchboard.user.v1.UserService.GetUser", [{"id": i} for i in ids])


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _user_cases(stack: Stack, load: GhzLoad) -> list[GhzCase]:
    user = stack.users[0]
    get = _get_users(stack)
    create = _call(
        USER_PROTO,
        "switchboard.user.v1.UserService.CreateUser",
        {
            "user": {"email": "ghz-{{newUUID}}@bench.example", "display_name": "Bench User"},
            "request_id": "{{newUUID}}",
        },
    )
    list50 = _call(USER_PROTO, "switchboard.user.v1.UserService.ListUsers", {"page_size": 50})
    list1000 = _call(USER_PROTO, "switchboard.user.v1.UserService.ListUsers", {"page_size": 1000})
    config = stack.config
    paced = GhzLoad(config.paced_concurrency, load.duration_s, rps=config.paced_rps)
    lister = GhzLoad(config.list_concurrency, load.duration_s + 2 * BACKGROUND_LEAD_S)
    return [
        GhzCase("user.get.ghz", user.address, get, load, (user,)),
        GhzCase("user.create.ghz", user.address, create, load, (user,)),
        GhzCase("user.list50.ghz", user.address, list50, load, (user,)),
        GhzCase("user.get.paced", user.address, get, paced, ()),
        GhzCase("user.get.paced_list", user.address, get, paced, (), list1000, lister),
    ]


def _product_cases(stack: Stack, load: GhzLoad) -> list[GhzCase]:
    assert stack.product is not None
    product = stack.product
    create = _call(
        PRODUCT_PROTO,
        "switchboard.product.v1.ProductService.CreateProduct",
        {
            "product": {
                "sku": "GHZ-{{newUUID}}",
                "name": "Bench product",
                "price": {"currency_code": "EUR", "amount_minor": 1999},
                "stock": 100,
                "seller_id": stack.seller_id,
            },
            "request_id": "{{newUUID}}",
        },
    )
    reserve = _call(
        PRODUCT_PROTO,
        "switchboard.product.v1.ProductService.ReserveStock",
        {"product_id": stack.product_id, "quantity": 1, "request_id": "{{newUUID}}"},
    )
    users = tuple(stack.users[:1])
    return [
        GhzCase("product.create.ghz", product.address, create, load, (product, *users)),
        GhzCase("product.reserve.ghz", product.address, reserve, load, (product,)),
    ]


def _registry_cases(stack: Stack, load: GhzLoad) -> list[GhzCase]:
    assert stack.registry is not None
    return _registry_on(stack.registry, stack.heartbeat_lease, "registry", load, ())


def _registry_etcd_cases(stack: Stack, load: GhzLoad) -> list[GhzCase]:
    """The same calls on a registry keeping its state in the bench's etcd (CPU: both)."""
    assert stack.registry_etcd is not None and stack.etcd is not None
    registry, lease = stack.registry_etcd, stack.registry_etcd_lease
    return _registry_on(registry, lease, "registry_etcd", load, (stack.etcd,))


def _registry_on(
    registry: Proc, lease_id: str, prefix: str, load: GhzLoad, also: tuple[Proc, ...]
) -> list[GhzCase]:
    service = "switchboard.registry.v1.RegistryService"
    lease = {"lease_id": lease_id}
    heartbeat = _call(REGISTRY_PROTO, f"{service}.Heartbeat", lease)
    stream = _call(REGISTRY_PROTO, f"{service}.KeepAlive", [lease] * STREAM_MESSAGES)
    resolve = _call(REGISTRY_PROTO, f"{service}.Resolve", {"service": "resolve-100"})
    servers = (registry, *also)
    return [
        GhzCase(f"{prefix}.heartbeat.ghz", registry.address, heartbeat, load, servers),
        GhzCase(
            f"{prefix}.keepalive.ghz",
            registry.address,
            stream,
            load,
            servers,
            messages=STREAM_MESSAGES,
        ),
        GhzCase(f"{prefix}.resolve100.ghz", registry.address, resolve, load, servers),
    ]


def _etcd_cases(stack: Stack, load: GhzLoad) -> list[GhzCase]:
    assert stack.etcd is not None
    etcd = stack.etcd
    lease = {"ID": str(stack.etcd_lease)}
    once = _etcd_call("Lease.LeaseKeepAlive", lease)
    stream = _etcd_call("Lease.LeaseKeepAlive", [lease] * STREAM_MESSAGES)
    key, end = etcd_prefix("resolve-100")
    data = {"key": _b64(key), "range_end": _b64(end), "serializable": True}
    ranged = _etcd_call("KV.Range", data)
    linear = _etcd_call("KV.Range", data | {"serializable": False})
    return [
        GhzCase("etcd.keepalive_once.ghz", etcd.address, once, load, (etcd,)),
        GhzCase(
            "etcd.keepalive.ghz", etcd.address, stream, load, (etcd,), messages=STREAM_MESSAGES
        ),
        GhzCase("etcd.range100.ghz", etcd.address, ranged, load, (etcd,)),
        GhzCase("etcd.range100_linear.ghz", etcd.address, linear, load, (etcd,)),
    ]


def _echo_cases(stack: Stack, load: GhzLoad) -> list[GhzCase]:
    get = _get_users(stack)
    cases = []
    for key, proc in (("echo.aio.ghz", stack.echo_aio), ("echo.sync.ghz", stack.echo_sync)):
        if proc is not None:
            cases.append(GhzCase(key, proc.address, get, load, (proc,)))
    return cases


def ghz_cases(stack: Stack) -> list[GhzCase]:
    """Every ghz case whose servers are up (the others are reported missing elsewhere)."""
    load = GhzLoad(stack.config.concurrency, stack.config.duration_s)
    cases = _echo_cases(stack, load)
    if stack.users and stack.user_ids:
        cases += _user_cases(stack, load)
    if stack.product is not None and stack.product_id:
        cases += _product_cases(stack, load)
    if stack.registry is not None and stack.heartbeat_lease:
        cases += _registry_cases(stack, load)
    if stack.etcd is not None and stack.etcd_lease:
        cases += _etcd_cases(stack, load)
    if stack.registry_etcd is not None and stack.registry_etcd_lease:
        cases += _registry_etcd_cases(stack, load)
    return [case for case in cases if stack.config.wants(case.key)]


async def _one(stack: Stack, case: GhzCase, duration_s: float) -> tuple[Rep, dict[str, int]]:
    """One ghz run of the case (with its background load, if any) and its server CPU."""
    assert stack.ghz is not None
    load = GhzLoad(case.load.concurrency, duration_s, case.load.rps, case.load.cpus)
    background = None
    if case.background is not None and case.background_load is not None:
        bg_load = GhzLoad(case.background_load.concurrency, duration_s + 2 * BACKGROUND_LEAD_S)
        background = asyncio.create_task(
            run_ghz(stack.ghz, case.target, case.background, bg_load, stack.work)
        )
        await asyncio.sleep(BACKGROUND_LEAD_S)
    ticks = [read_cpu_ticks(p.pid) for p in case.servers]
    try:
        rep, errors = await run_ghz(stack.ghz, case.target, case.call, load, stack.work)
    finally:
        if background is not None:
            await asyncio.gather(background, return_exceptions=True)
    if case.messages > 1:  # rate and CPU per message; latency stays per stream
        rep = replace(rep, calls=rep.calls * case.messages)
    if not case.servers:
        return rep, errors
    used = sum(read_cpu_ticks(p.pid) for p in case.servers) - sum(ticks)
    return rep.with_cpu(used, TICKS_PER_S), errors


async def run_rounds(
    stack: Stack, cases: Sequence[GhzCase], results: dict[str, CaseResult]
) -> None:
    """Warm each case up, then ``reps`` rounds; fill ``results`` (a failing case gets its error)."""
    live = list(cases)
    for case in list(live):
        try:
            await _one(stack, case, stack.config.warmup_s)
        except Exception as err:
            results[case.key].error = f"ghz could not run it: {str(err)[:400]}"
            live.remove(case)
    for _ in range(stack.config.reps):
        for case in list(live):
            try:
                rep, errors = await _one(stack, case, stack.config.duration_s)
            except Exception as err:
                results[case.key].error = f"ghz failed: {str(err)[:400]}"
                live.remove(case)
                continue
            result = results[case.key]
            result.reps.append(rep)
            _add_failures(result, errors)
    for case in cases:
        if case.servers:
            results[case.key].peak_rss = max(p.memory().hwm for p in case.servers)


def _add_failures(result: CaseResult, errors: dict[str, int]) -> None:
    counts: dict[str, int] = result.failures.setdefault("counts", {})
    for message, count in errors.items():
        counts[message[:200]] = counts.get(message[:200], 0) + count
