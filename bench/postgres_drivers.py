"""asyncpg vs psycopg 3: the database work of GetUser and CreateUser, driver against driver.

Why the store uses psycopg (see the README's "Running on several machines"):
the same synchronous transaction functions serve SQLite and PostgreSQL, and
psycopg has a synchronous API (run on a small thread pool) while asyncpg is
async only: with asyncpg every store transaction would exist twice. This
measures what that choice costs, on the statements the service runs:

- GetUser: one primary-key SELECT.
- CreateUser: one transaction: lock the revision counter row, check the
  email, INSERT the user and its event, bump the counter, NOTIFY.

Three ways: asyncpg (pool), psycopg async (pool), and psycopg sync on a
thread pool (what the service ships). Each is a closed loop of
``--concurrency`` callers for ``--seconds`` on a throw-away server.

Example::

    python -m bench.postgres_drivers --seconds 3 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import psycopg
import psycopg_pool

from harness import PostgresServer

__all__ = ["main"]

POOL = 8
_SCHEMA = (
    "CREATE TABLE users (id TEXT PRIMARY KEY, email_key TEXT UNIQUE NOT NULL, name TEXT NOT NULL)",
    "CREATE TABLE events (revision BIGINT PRIMARY KEY, payload BYTEA NOT NULL)",
    "CREATE TABLE counter (id INT PRIMARY KEY, revision BIGINT NOT NULL)",
    "INSERT INTO counter VALUES (1, 0)",
    "INSERT INTO users SELECT 'u' || g, 'e' || g, 'n' FROM generate_series(1, 1000) g",
)
_GET = "SELECT id, email_key, name FROM users WHERE id = {}"
_STEPS = (
    ("SELECT revision FROM counter WHERE id = 1 FOR UPDATE", 0),
    ("SELECT id FROM users WHERE email_key = {}", 1),
    ("INSERT INTO users (id, email_key, name) VALUES ({}, {}, 'n')", 2),
    ("INSERT INTO events (revision, payload) VALUES ({}, {})", 2),
    ("UPDATE counter SET revision = {} WHERE id = 1", 1),
    ("NOTIFY bench", 0),
)


def _sql(template: str, style: str) -> str:
    marks = iter(range(1, 10))
    return template.format(*(f"${next(marks)}" if style == "$" else "%s" for _ in range(5)))


async def _loop(call: Callable[[int], Awaitable[object]], ns: argparse.Namespace) -> float:
    counter = itertools.count()
    deadline = time.monotonic() + ns.seconds

    async def one() -> int:
        done = 0
        while time.monotonic() < deadline:
            await call(next(counter))
            done += 1
        return done

    started = time.monotonic()
    total = sum(await asyncio.gather(*(one() for _ in range(ns.concurrency))))
    return total / (time.monotonic() - started)


async def _asyncpg(url: str, ns: argparse.Namespace, tag: str) -> tuple[float, float]:
    pool = await asyncpg.create_pool(url, min_size=POOL, max_size=POOL)

    async def get(n: int) -> object:
        return await pool.fetchrow(_sql(_GET, "$"), f"u{n % 1000 + 1}")

    async def create(n: int) -> object:
        async with pool.acquire() as conn, conn.transaction():
            head = (await conn.fetchrow(_sql(_STEPS[0][0], "$")))[0]
            await conn.fetchrow(_sql(_STEPS[1][0], "$"), f"{tag}{n}")
            await conn.execute(_sql(_STEPS[2][0], "$"), f"{tag}{n}", f"{tag}{n}")
            await conn.execute(_sql(_STEPS[3][0], "$"), head + 1, b"x" * 120)
            await conn.execute(_sql(_STEPS[4][0], "$"), head + 1)
            await conn.execute(_STEPS[5][0])
        return None

    try:
        return await _loop(get, ns), await _loop(create, ns)
    finally:
        await pool.close()


async def _psycopg_async(url: str, ns: argparse.Namespace, tag: str) -> tuple[float, float]:
    pool = psycopg_pool.AsyncConnectionPool(
        url, min_size=POOL, max_size=POOL, kwargs={"autocommit": True}, open=False
    )
    await pool.open()

    async def get(n: int) -> object:
        async with pool.connection() as conn:
            return await (await conn.execute(_sql(_GET, "%"), (f"u{n % 1000 + 1}",))).fetchone()

    async def create(n: int) -> object:
        async with pool.connection() as conn, conn.transaction():
            row = await (await conn.execute(_sql(_STEPS[0][0], "%"))).fetchone()
            head = int(row[0]) if row else 0
            await conn.execute(_sql(_STEPS[1][0], "%"), (f"{tag}{n}",))
            await conn.execute(_sql(_STEPS[2][0], "%"), (f"{tag}{n}", f"{tag}{n}"))
            await conn.execute(_sql(_STEPS[3][0], "%"), (head + 1, b"x" * 120))
            await conn.execute(_sql(_STEPS[4][0], "%"), (head + 1,))
            await conn.execute("NOTIFY bench")
        return None

    try:
        return await _loop(get, ns), await _loop(create, ns)
    finally:
        await pool.close()


async def _psycopg_threads(url: str, ns: argparse.Namespace, tag: str) -> tuple[float, float]:
    pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
        url, min_size=POOL, max_size=POOL, kwargs={"autocommit": True}
    )
    executor = ThreadPoolExecutor(POOL)
    loop = asyncio.get_running_loop()

    def get_sync(n: int) -> object:
        with pool.connection() as conn:
            return conn.execute(_sql(_GET, "%"), (f"u{n % 1000 + 1}",)).fetchone()

    def create_sync(n: int) -> object:
        with pool.connection() as conn, conn.transaction():
            row = conn.execute(_sql(_STEPS[0][0], "%")).fetchone()
            head = int(row[0]) if row else 0
            conn.execute(_sql(_STEPS[1][0], "%"), (f"{tag}{n}",))
            conn.execute(_sql(_STEPS[2][0], "%"), (f"{tag}{n}", f"{tag}{n}"))
            conn.execute(_sql(_STEPS[3][0], "%"), (head + 1, b"x" * 120))
            conn.execute(_sql(_STEPS[4][0], "%"), (head + 1,))
            conn.execute("NOTIFY bench")
        return None

    async def get(n: int) -> object:
        return await loop.run_in_executor(executor, get_sync, n)

    async def create(n: int) -> object:
        return await loop.run_in_executor(executor, create_sync, n)

    try:
        return await _loop(get, ns), await _loop(create, ns)
    finally:
        executor.shutdown()
        pool.close()


async def _run(ns: argparse.Namespace, server: PostgresServer) -> list[tuple[str, float, float]]:
    url = server.create_database()
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in _SCHEMA:
            conn.execute(statement)
    runs = (("asyncpg", _asyncpg), ("psycopg async", _psycopg_async),
            ("psycopg sync on threads (shipped)", _psycopg_threads))  # fmt: skip
    return [(name, *await run(url, ns, f"d{i}-")) for i, (name, run) in enumerate(runs)]


def main(argv: Sequence[str] | None = None) -> None:
    """Start a server, measure each driver, print a markdown table."""
    parser = argparse.ArgumentParser(prog="python -m bench.postgres_drivers", description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16)
    ns = parser.parse_args(argv)
    server = PostgresServer()
    server.start()
    try:
        results = asyncio.run(_run(ns, server))
    finally:
        server.stop()
    print("| driver | GetUser SELECT/s | CreateUser transactions/s |\n| --- | ---: | ---: |")
    for name, get, create in results:
        print(f"| {name} | {get:,.0f} | {create:,.0f} |")


if __name__ == "__main__":
    main()
