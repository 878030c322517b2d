"""Storage backends side by side: SQLite vs PostgreSQL (1 and 2 instances) vs the raw echo.

Starts, in one run: the raw grpc.aio echo (``bench._echo``), a user and a
product service on SQLite, and two user and two product instances on one
PostgreSQL database (a throw-away server from Debian's postgresql-15, as
the tests start it). Each case is a closed loop of ``--concurrency`` calls
for ``--seconds`` from this process (pinned to the load core when there are
two); "2 instances" spreads the calls over both instances' channels.

Cases: GetUser, CreateUser, ListUsers(page_size=50), ReserveStock.

Example::

    python -m bench.storage --seconds 3 --concurrency 16     # or: make bench-storage
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc.aio

from bench._procs import Procs, plan_cpus
from harness import PostgresServer
from switchboard.product.v1 import product_pb2, product_service_pb2, product_service_pb2_grpc
from switchboard.user.v1 import user_pb2, user_service_pb2, user_service_pb2_grpc

__all__ = ["main"]

Call = Callable[[int], Awaitable[object]]
_PY = sys.executable
_SERIAL = itertools.count()


@dataclass(frozen=True)
class Result:
    """One case's throughput and latency."""

    case: str
    target: str
    calls_per_s: float
    p50_ms: float
    p99_ms: float


async def _closed_loop(call: Call, seconds: float, concurrency: int) -> tuple[float, list[float]]:
    """Run ``call(n)`` from ``concurrency`` loops for ``seconds``; (calls/s, latencies)."""
    counter = _SERIAL  # one numbering for the whole run: every create and reserve is new
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def loop() -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            await call(next(counter))
            latencies.append(time.perf_counter() - started)

    started = time.monotonic()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return len(latencies) / (time.monotonic() - started), latencies


async def _measure(case: str, target: str, call: Call, ns: argparse.Namespace) -> Result:
    await _closed_loop(call, min(0.5, ns.seconds), ns.concurrency)  # warm up
    rate, latencies = await _closed_loop(call, ns.seconds, ns.concurrency)
    cuts = statistics.quantiles(latencies, n=100)
    return Result(case, target, rate, cuts[49] * 1000, cuts[98] * 1000)


def _user(n: int, tag: str) -> user_pb2.User:
    return user_pb2.User(email=f"{tag}{n}@bench.example", display_name=f"Bench {n}")


class Target:
    """One or two instances of the user and product service on one backend."""

    def __init__(self, name: str, users: Sequence[str], products: Sequence[str]) -> None:
        self.name = name
        self._channels = [grpc.aio.insecure_channel(a) for a in (*users, *products)]
        self.users = [
            user_service_pb2_grpc.UserServiceStub(c) for c in self._channels[: len(users)]
        ]
        self.products = [
            product_service_pb2_grpc.ProductServiceStub(c) for c in self._channels[len(users) :]
        ]
        self.user_ids: list[str] = []
        self.product_id = ""

    async def seed(self) -> None:
        """200 users to read, and one product with stock for every reserve of the run."""
        for n in range(200):
            request = user_service_pb2.CreateUserRequest(user=_user(n, f"seed-{self.name}-"))
            self.user_ids.append((await self.users[0].CreateUser(request)).user.id)
        product = product_pb2.Product(sku=f"BENCH-{self.name}", name="Bench", stock=10**12)
        product.seller_id = self.user_ids[0]
        product.price.currency_code, product.price.amount_minor = "EUR", 100
        create = product_service_pb2.CreateProductRequest(product=product)
        self.product_id = (await self.products[0].CreateProduct(create)).product.id

    def calls(self) -> dict[str, Call]:
        """The cases, each spreading its calls over every instance."""
        users, products, ids = self.users, self.products, self.user_ids
        tag = f"{self.name}-{os.getpid()}-"

        def get(n: int) -> Awaitable[object]:
            request = user_service_pb2.GetUserRequest(id=ids[n % len(ids)])
            return users[n % len(users)].GetUser(request)

        def create(n: int) -> Awaitable[object]:
            request = user_service_pb2.CreateUserRequest(user=_user(n, tag))
            return users[n % len(users)].CreateUser(request)

        def page(n: int) -> Awaitable[object]:
            return users[n % len(users)].ListUsers(user_service_pb2.ListUsersRequest(page_size=50))

        def reserve(n: int) -> Awaitable[object]:
            request = product_service_pb2.ReserveStockRequest(
                product_id=self.product_id, quantity=1, request_id=f"{tag}{n}"
            )
            return products[n % len(products)].ReserveStock(request)

        return {
            "GetUser": get,
            "CreateUser": create,
            "ListUsers(50)": page,
            "ReserveStock": reserve,
        }

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()


async def _start_backend(
    procs: Procs, name: str, location: Sequence[str], instances: int
) -> tuple[list[str], list[str]]:
    """``instances`` user and product processes on one store location; their addresses."""
    listen = ("--listen", "127.0.0.1:0", *location)
    users = [
        (await procs.start(f"user-{name}", [_PY, "-m", "services.user", *listen])).address
        for _ in range(instances)
    ]
    env = {**os.environ, "SWITCHBOARD_ADDRESSES_USER": ",".join(users)}
    products = [
        (await procs.start(f"product-{name}", [_PY, "-m", "services.product", *listen], env=env))
        for _ in range(instances)
    ]
    return users, [p.address for p in products]


async def _run(ns: argparse.Namespace, work: Path) -> list[Result]:
    postgres = PostgresServer()
    postgres.start()
    try:
        async with Procs(work, plan_cpus()) as procs:
            argv = [_PY, "-m", "bench._echo", "--kind", "aio", "--listen", "127.0.0.1:0"]
            echo = await procs.start("echo", argv)
            url = postgres.create_database()
            lite_users, lite_products = await _start_backend(
                procs, "sqlite", ["--data-dir", str(work)], 1
            )
            pg_users, pg_products = await _start_backend(procs, "pg", ["--database-url", url], 2)
            targets = [
                Target("sqlite", lite_users, lite_products),
                Target("pg1", pg_users[:1], pg_products[:1]),
                Target("pg2", pg_users, pg_products),
            ]
            try:
                return await _cases(ns, echo.address, targets)
            finally:
                for target in targets:
                    await target.close()
    finally:
        postgres.stop()


_LABELS = {"sqlite": "SQLite", "pg1": "PostgreSQL, 1 instance", "pg2": "PostgreSQL, 2 instances"}


async def _cases(ns: argparse.Namespace, echo: str, targets: list[Target]) -> list[Result]:
    results: list[Result] = []
    async with grpc.aio.insecure_channel(echo) as channel:
        stub = user_service_pb2_grpc.UserServiceStub(channel)
        request = user_service_pb2.GetUserRequest(id="0" * 32)
        results.append(await _measure("GetUser", "raw echo", lambda n: stub.GetUser(request), ns))
    for target in targets:
        await target.seed()
    for case in ("GetUser", "CreateUser", "ListUsers(50)", "ReserveStock"):
        for target in targets:
            call = target.calls()[case]
            results.append(await _measure(case, _LABELS[target.name], call, ns))
    return results


def main(argv: Sequence[str] | None = None) -> None:
    """Parse flags, run every case once, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.storage", description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each case")
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight")
    ns = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sb-bench-storage-") as work:
        results = asyncio.run(_run(ns, Path(work)))
    print(_table(results))


def _table(results: Sequence[Result]) -> str:
    """Markdown: each case's rate and latency, and its ratio to SQLite's."""
    sqlite = {r.case: r.calls_per_s for r in results if r.target == _LABELS["sqlite"]}
    lines = [
        "| case | backend | calls/s | p50 ms | p99 ms | vs SQLite |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        ratio = f"{r.calls_per_s / sqlite[r.case]:.2f}x" if r.case in sqlite else ""
        lines.append(
            f"| {r.case} | {r.target} | {r.calls_per_s:,.0f} | {r.p50_ms:.2f} | "
            f"{r.p99_ms:.2f} | {ratio} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
