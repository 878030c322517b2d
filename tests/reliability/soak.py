"""The soak: mixed load on the whole platform for minutes, with a fault every 30 s.

``make soak`` runs ``python -m tests.reliability.soak --seconds 600``. It starts
a registry, three user instances and a product service (real processes,
loopback, a temp dir), puts steady idempotent load on them through the client
runtime, and every ``--fault-interval`` seconds injects the next fault of a
rotation: SIGKILL a user instance, SIGTERM another, SIGKILL the registry,
blackhole the client's path to the registry, SIGKILL the product service -
each restarted afterwards. At the end it checks that every acknowledged write
is there and prints::

    calls sent, failed (by code), faults injected (by kind),
    acknowledged writes and how many were lost (must be 0),
    RSS and open file descriptors at the end of warm-up and at the end
    (must be flat for the user instance never faulted, and for the client).

Exit status 1 if a write was lost or a resource grew.

Example::

    .venv/bin/python -m tests.reliability.soak --seconds 60 --fault-interval 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness import Launcher, Process
from services.product.client import ProductClient
from services.runtime import Client, ClientConfig, RegistryConfig
from services.runtime import RetrySettings as Retry
from services.user.client import UserClient
from tests.reliability._support.load import Load, LoadStats
from tests.reliability._support.proxy import FaultProxy
from tests.reliability._support.stack import Stack, start_stack

__all__ = ["main"]

MIB = 1024 * 1024
TTL_S = 3.0
BLACKHOLE_S = 3.0
# "Flat" after warm-up: growth under this is allocator noise and caches filling up.
RSS_SLACK = (0.10, 16 * MIB)  # 10 % or 16 MiB, whichever is more
FD_SLACK = 4


@dataclass
class Usage:
    """Resident memory and open descriptors of one process at one moment."""

    rss: int
    fds: int


@dataclass
class Soak:
    """A running soak: the platform, the client, the faults and the measurements."""

    platform: Stack
    proxy: FaultProxy
    load: Load
    faults: Counter[str] = field(default_factory=Counter)
    fault_errors: list[str] = field(default_factory=list)
    warm: dict[str, Usage] = field(default_factory=dict)

    def steady(self) -> dict[str, Process]:
        """The processes no fault touches (the others restart): their resources must stay flat."""
        return {"user-0 (never faulted)": self.platform.users[0]}

    def usage(self) -> dict[str, Usage]:
        found = {name: Usage(p.rss_bytes(), p.open_fds()) for name, p in self.steady().items()}
        found["client (this process)"] = own_usage()
        return found


def own_usage() -> Usage:
    status = Path("/proc/self/status").read_text().splitlines()
    rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
    return Usage(rss, len(os.listdir("/proc/self/fd")))


# --- faults ------------------------------------------------------------------------------


async def kill_user(soak: Soak) -> None:
    victim = soak.platform.users[1]
    victim.kill()
    await victim.restart()


async def term_user(soak: Soak) -> None:
    leaving = soak.platform.users[2]
    code = await leaving.stop()
    if code != 0:
        soak.fault_errors.append(f"SIGTERM: user exited {code}")
    await leaving.restart()


async def kill_registry(soak: Soak) -> None:
    registry = soak.platform.registry
    registry.kill()
    await registry.wait_exit()
    await soak.load.wait_for_calls(100, 30.0)  # the caches carry the load meanwhile
    await registry.restart()


async def blackhole_registry(soak: Soak) -> None:
    soak.proxy.blackhole()
    try:
        await soak.load.wait_for_calls(100, 30.0)
        await asyncio.sleep(BLACKHOLE_S)  # the fault's duration, not a wait for an event
    finally:
        soak.proxy.heal()


async def kill_product(soak: Soak) -> None:
    product = soak.platform.product
    assert product is not None
    product.kill()
    await product.restart()


FAULTS: list[tuple[str, Callable[[Soak], Awaitable[None]]]] = [
    ("SIGKILL user instance", kill_user),
    ("SIGTERM user instance", term_user),
    ("SIGKILL registry", kill_registry),
    ("blackhole client -> registry", blackhole_registry),
    ("SIGKILL product service", kill_product),
]


async def inject_faults(soak: Soak, until: float, interval_s: float) -> None:
    """The next fault of the rotation every ``interval_s`` seconds, until ``until``."""
    for index in range(10_000):  # bounded: at most one fault per interval anyway
        next_at = time.monotonic() + interval_s
        if next_at >= until:
            return
        await asyncio.sleep(next_at - time.monotonic())  # the soak's own clock
        name, fault = FAULTS[index % len(FAULTS)]
        print(f"  fault {index + 1:>3}: {name} ({until - time.monotonic():.0f} s to go)")
        try:
            await fault(soak)
        except Exception as err:  # a fault that cannot be injected is a finding, not a crash
            soak.fault_errors.append(f"{name}: {err!r}")
        soak.faults[name] += 1


# --- checks ------------------------------------------------------------------------------


def journaled(journal: Path) -> dict[str, set[str]]:
    """The acknowledged writes the load appended to its journal, by kind."""
    found: dict[str, set[str]] = {"users": set(), "products": set()}
    with journal.open() as lines:
        for line in lines:
            kind, _, resource_id = line.strip().partition(" ")
            found[kind].add(resource_id)
    return found


async def lost_writes(client: Client, stats: LoadStats, journal: Path) -> dict[str, int]:
    """Acknowledged writes that are not there, by kind."""
    acked = journaled(journal)
    users = await UserClient.connect(client)
    present: set[str] = set()
    token = ""
    for _ in range(10_000):  # bounded: pages of 1000
        page = await users.list_users(page_size=1000, page_token=token, timeout_s=30)
        present |= {u.id for u in page.users}
        token = page.next_page_token
        if not token:
            break
    products = await ProductClient.connect(client)
    listed: set[str] = set()
    token = ""
    for _ in range(10_000):
        product_page = await products.list_products(page_size=1000, page_token=token, timeout_s=30)
        listed |= {p.id for p in product_page.products}
        token = product_page.next_page_token
        if not token:
            break
    lost_reservations = 0
    for product_id, units in stats.reserved.items():
        stock = (await products.get_product(product_id, timeout_s=30)).stock
        lost_reservations += max(0, stock - (1_000_000 - units))  # stock never given back
    return {
        "users": len(acked["users"] - present),
        "products": len(acked["products"] - listed),
        "reserved units": lost_reservations,
    }


def grew(before: Usage, after: Usage) -> list[str]:
    problems = []
    allowed = max(before.rss * RSS_SLACK[0], RSS_SLACK[1])
    if after.rss - before.rss > allowed:
        problems.append(f"RSS {before.rss / MIB:.1f} -> {after.rss / MIB:.1f} MiB")
    if after.fds - before.fds > FD_SLACK:
        problems.append(f"fds {before.fds} -> {after.fds}")
    return problems


def report(soak: Soak, stats: LoadStats, lost: dict[str, int], end: dict[str, Usage]) -> bool:
    """Print the report; True when the soak passed."""
    print("\n=== soak report ===")
    sent = ", ".join(f"{k} {v}" for k, v in sorted(stats.sent.items()))
    print(f"calls sent: {stats.total}  ({sent})")
    failed = ", ".join(f"{k} {v}" for k, v in sorted(stats.failed.items())) or "none"
    print(f"calls failed: {stats.failed_total}  ({failed})")
    for line in stats.failures[:10]:
        print(f"  {line}")
    print(f"faults injected: {sum(soak.faults.values())}  ({dict(soak.faults)})")
    for line in soak.fault_errors:
        print(f"  fault problem: {line}")
    acked = {**stats.acked, "reserved units": sum(stats.reserved.values())}
    print(f"acknowledged writes: {acked}")
    print(f"acknowledged writes lost: {sum(lost.values())}  ({lost})")
    ok = sum(lost.values()) == 0 and not soak.fault_errors
    print("resources (after warm-up -> end):")
    for name, before in soak.warm.items():
        after = end[name]
        problems = grew(before, after)
        ok = ok and not problems
        verdict = "flat" if not problems else "GREW: " + "; ".join(problems)
        print(
            f"  {name:<24} RSS {before.rss / MIB:6.1f} -> {after.rss / MIB:6.1f} MiB   "
            f"fds {before.fds:>3} -> {after.fds:>3}   {verdict}"
        )
    print("PASS" if ok else "FAIL")
    return ok


# --- the run -----------------------------------------------------------------------------


async def soak(seconds: float, interval_s: float, workdir: Path) -> bool:
    # Stopped itself (SIGTERM; Ctrl-C cancels anyway), the soak still reaps its processes.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    until = time.monotonic() + seconds
    async with Launcher(workdir) as launcher:
        platform = await start_stack(launcher, workdir, users=3, product=True, ttl_s=TTL_S)
        proxy = FaultProxy("127.0.0.1", platform.registry.port)
        await proxy.start()
        config = ClientConfig(
            registry=RegistryConfig((proxy.address,)), retry=Retry(max_attempts=6)
        )
        try:
            async with Client(config) as client:
                users = await UserClient.connect(client)
                products = await ProductClient.connect(client)
                load = Load(users, products, workers=8, journal=workdir / "acknowledged.txt")
                run = Soak(platform, proxy, load)
                await load.start()
                warm_up = min(max(5.0, seconds * 0.1), 30.0)
                await asyncio.sleep(warm_up)  # the warm-up's length: nothing to wait for
                run.warm = run.usage()
                print(f"warm-up done after {warm_up:.0f} s; faults every {interval_s:g} s")
                await inject_faults(run, until, interval_s)
                await asyncio.sleep(max(0.0, until - time.monotonic()))
                stats = await load.stop()
                end = run.usage()
                lost = await lost_writes(client, stats, workdir / "acknowledged.txt")
        finally:
            await proxy.close()
    return report(run, stats, lost, end)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 600)))
    parser.add_argument("--fault-interval", type=float, default=30.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="switchboard-soak-") as workdir:
        print(f"soak: {args.seconds:g} s, faults every {args.fault_interval:g} s, in {workdir}")
        ok = asyncio.run(soak(args.seconds, args.fault_interval, Path(workdir)))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
