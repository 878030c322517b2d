"""Steady mixed load through the client runtime: every outcome and acknowledged write counted.

Only calls that are safe to retry are made - reads, and writes with a
request_id - so under faults that the platform promises to absorb, every
single call must succeed. Acknowledged writes are remembered (in memory, or
appended to a journal file for long runs, so that memory stays flat) so a test
can check afterwards that each one is really there.

Example::

    load = Load(users, products, workers=6)
    await load.start(); ...fault...; await load.stop()
    assert load.stats.failed == {}
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from services.product.client import ProductClient
from services.runtime import SwitchboardError
from services.user.client import UserClient
from switchboard.product.v1 import product_pb2

__all__ = ["Load", "LoadStats"]

EUR = product_pb2.Money(currency_code="EUR", amount_minor=500)
MAX_CALLS_PER_WORKER = 1_000_000  # every loop is bounded; a run stops long before


@dataclass
class LoadStats:
    """What the load did: calls by operation, failures by code, acknowledged writes."""

    sent: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    acked: Counter[str] = field(default_factory=Counter)  # "users", "products" (also journaled)
    users: dict[str, str] = field(default_factory=dict)  # request_id -> user id
    products: dict[str, str] = field(default_factory=dict)  # request_id -> product id
    reserved: dict[str, int] = field(default_factory=dict)  # product id -> units acknowledged
    last_ok: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.sent.values())

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())


class Load:
    """``workers`` loops of random idempotent calls until :meth:`stop`."""

    def __init__(
        self,
        users: UserClient,
        products: ProductClient | None = None,
        *,
        workers: int = 6,
        timeout_s: float = 5.0,
        seed: int = 7,
        journal: Path | None = None,
    ) -> None:
        self.users = users
        self.products = products
        self.workers = workers
        self.timeout_s = timeout_s
        self.stats = LoadStats()
        self._random = random.Random(seed)
        self._stop = asyncio.Event()
        self._progress = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._seller = ""
        self._product_ids: list[str] = []
        self._recent: deque[str] = deque(maxlen=256)  # users to read and rename
        self._journal: TextIO | None = journal.open("a") if journal else None

    async def start(self) -> None:
        """Create a seller and a product to work on, then start the workers."""
        seller = await self.users.create_user(
            email=f"seller-{uuid.uuid4().hex[:8]}@example.com", display_name="Seller"
        )
        self._seller = seller.id
        if self.products is not None:
            product = await self.products.create_product(
                sku=f"LOAD-{uuid.uuid4().hex[:8]}", name="Stock", price=EUR,
                seller_id=seller.id, stock=1_000_000,
            )  # fmt: skip
            self._product_ids.append(product.id)
        self._tasks = [asyncio.create_task(self._work(i)) for i in range(self.workers)]

    async def stop(self) -> LoadStats:
        """Stop the workers (each finishes its current call) and return the stats."""
        self._stop.set()
        await asyncio.gather(*self._tasks)
        if self._journal is not None:
            self._journal.close()
        return self.stats

    async def wait_for_calls(self, count: int, timeout_s: float) -> None:
        """Wait (bounded) until ``count`` more calls have been made."""
        target = self.stats.total + count
        async with asyncio.timeout(timeout_s):
            while self.stats.total < target:
                self._progress.clear()
                await self._progress.wait()

    async def _work(self, worker: int) -> None:
        for _ in range(MAX_CALLS_PER_WORKER):
            if self._stop.is_set():
                return
            operation = self._pick()
            self.stats.sent[operation] += 1
            try:
                await getattr(self, f"_{operation}")()
            except SwitchboardError as err:
                self.stats.failed[type(err).__name__] += 1
                self.stats.failures.append(f"{operation}: {type(err).__name__}: {err.message}")
            else:
                self.stats.last_ok = time.monotonic()
            self._progress.set()

    def _pick(self) -> str:
        choices = ["get_user", "get_user", "list_users", "create_user", "rename_user"]
        if self.products is not None:
            choices += ["get_product", "reserve", "create_product"]
        return self._random.choice(choices)

    # --- operations -------------------------------------------------------------------

    def _acknowledged(self, kind: str, request_id: str, resource_id: str) -> None:
        self.stats.acked[kind] += 1
        if self._journal is not None:
            self._journal.write(f"{kind} {resource_id}\n")
        elif kind == "users":
            self.stats.users[request_id] = resource_id
        else:
            self.stats.products[request_id] = resource_id

    def _some_user(self) -> str:
        return self._random.choice(self._recent) if self._recent else self._seller

    async def _get_user(self) -> None:
        await self.users.get_user(self._some_user(), timeout_s=self.timeout_s)

    async def _list_users(self) -> None:
        await self.users.list_users(page_size=20, timeout_s=self.timeout_s)

    async def _create_user(self) -> None:
        request_id = uuid.uuid4().hex
        user = await self.users.create_user(
            email=f"u-{request_id[:16]}@example.com", display_name="Load",
            request_id=request_id, timeout_s=self.timeout_s,
        )  # fmt: skip
        self._acknowledged("users", request_id, user.id)
        self._recent.append(user.id)

    async def _rename_user(self) -> None:
        user_id = self._some_user()
        name = f"Load {uuid.uuid4().hex[:6]}"
        await self.users.update_user(
            user_id, display_name=name, request_id=uuid.uuid4().hex, timeout_s=self.timeout_s
        )

    async def _get_product(self) -> None:
        assert self.products is not None
        await self.products.get_product(self._product_ids[0], timeout_s=self.timeout_s)

    async def _reserve(self) -> None:
        assert self.products is not None
        product_id = self._product_ids[0]
        await self.products.reserve_stock(
            product_id, 1, request_id=uuid.uuid4().hex, timeout_s=self.timeout_s
        )
        self.stats.reserved[product_id] = self.stats.reserved.get(product_id, 0) + 1

    async def _create_product(self) -> None:
        assert self.products is not None
        request_id = uuid.uuid4().hex
        product = await self.products.create_product(
            sku=f"P-{request_id[:12]}", name="Load", price=EUR, seller_id=self._seller,
            stock=1, request_id=request_id, timeout_s=self.timeout_s,
        )  # fmt: skip
        self._acknowledged("products", request_id, product.id)
