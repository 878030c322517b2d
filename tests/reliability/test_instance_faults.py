"""Instance faults under load: real registry, three user instances, a product service.

* SIGKILL one of three user instances under steady load: not one idempotent
  call (reads, writes with a request_id - from the test and from the product
  service's seller checks) fails, every acknowledged write is there, and the
  dead instance leaves discovery within its lease TTL + 1 s.
* SIGTERM an instance with calls in flight (held in flight by a SQLite write
  lock the test takes): it deregisters, new calls go to the other instances
  only, every in-flight call completes successfully, and it exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import grpc.aio
import pytest

from harness import Launcher
from services.product.client import ProductClient
from services.user.client import UserClient
from switchboard.user.v1 import user_pb2
from switchboard.user.v1 import user_service_pb2 as us
from tests.reliability._support.load import Load
from tests.reliability._support.stack import Stack, resolve, start_stack
from tests.reliability._support.waits import eventually

pytestmark = pytest.mark.e2e

TTL_S = 3.0


async def test_sigkill_of_one_of_three_instances_fails_no_idempotent_call(
    launcher: Launcher, tmp_path: Path
) -> None:
    platform = await start_stack(launcher, tmp_path, users=3, product=True, ttl_s=TTL_S)
    victim = platform.users[0]
    async with platform.client() as client:
        users = await UserClient.connect(client)
        await eventually(lambda: len(users.conn.addresses) == 3, 5.0, "client sees 3 instances")
        load = Load(users, await ProductClient.connect(client), workers=6)
        await load.start()
        await load.wait_for_calls(100, 10.0)
        victim.kill()
        killed_at = time.monotonic()

        async def victim_gone() -> bool:
            return victim.address not in await resolve(platform.registry.address, "user")

        gone_after = await eventually(victim_gone, TTL_S + 3.0, "dead instance leaves discovery")
        await load.wait_for_calls(100, 10.0)  # and the load goes on without it
        stats = await load.stop()
        assert time.monotonic() - killed_at >= gone_after
    assert gone_after <= TTL_S + 1.0, f"the dead instance was listed {gone_after:.2f} s"
    assert stats.failed_total == 0, stats.failures[:10]
    assert stats.total > 200
    await assert_acknowledged_writes_present(platform, stats.users, stats.products)


async def assert_acknowledged_writes_present(
    platform: Stack, users: dict[str, str], products: dict[str, str]
) -> None:
    async with platform.client() as client:
        user_client = await UserClient.connect(client)
        listed = {u.id for u in (await user_client.list_users(page_size=1000)).users}
        assert set(users.values()) <= listed
        product_client = await ProductClient.connect(client)
        for product_id in products.values():
            await product_client.get_product(product_id)


@contextlib.contextmanager
def write_lock(database: Path) -> Iterator[None]:
    """Hold SQLite's write lock on ``database``: every writer waits (readers do not, in WAL)."""
    conn = sqlite3.connect(database, isolation_level=None, timeout=5.0)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


async def access_log_count(log: str, method: str) -> int:
    return log.count(f"method=/switchboard.user.v1.UserService/{method} ")


async def test_sigterm_completes_in_flight_calls_and_moves_new_ones(
    launcher: Launcher, tmp_path: Path
) -> None:
    platform = await start_stack(launcher, tmp_path, users=3, ttl_s=TTL_S)
    leaving = platform.users[0]
    async with platform.client() as client, grpc.aio.insecure_channel(leaving.address) as direct:
        users = await UserClient.connect(client)
        seed = await users.create_user(email="seed@example.com", display_name="Seed")
        await eventually(lambda: len(users.conn.addresses) == 3, 5.0, "client sees 3 instances")
        create = direct.unary_unary(
            "/switchboard.user.v1.UserService/CreateUser",
            request_serializer=us.CreateUserRequest.SerializeToString,
            response_deserializer=us.CreateUserResponse.FromString,
        )
        await create(us.CreateUserRequest(user=user_pb2.User(
            email="warm@example.com", display_name="Warm")), timeout=5)  # fmt: skip
        with write_lock(tmp_path / "user" / "user.db"):
            in_flight = [
                asyncio.ensure_future(
                    create(
                        us.CreateUserRequest(
                            user=user_pb2.User(
                                email=f"flight{i}@example.com", display_name="In flight"
                            ),
                            request_id=f"flight-{i}",
                        ),
                        timeout=15,
                    )
                )  # fmt: skip
                for i in range(8)
            ]
            done, _ = await asyncio.wait(in_flight, timeout=0.5)
            assert not done, "the calls were not held in flight by the lock"
            leaving.signal(signal.SIGTERM)
            await eventually(
                lambda: leaving.address not in users.conn.addresses, 5.0, "client drops it"
            )
            served_before = await access_log_count(leaving.log(), "GetUser")
            for _ in range(50):
                assert (await users.get_user(seed.id)).id == seed.id
            assert await access_log_count(leaving.log(), "GetUser") == served_before
            assert leaving.running  # still draining the held calls
        answers = await asyncio.wait_for(asyncio.gather(*in_flight), 10)
    assert sorted(a.user.email for a in answers) == sorted(
        f"flight{i}@example.com" for i in range(8)
    )
    assert await leaving.wait_exit() == 0
    assert "Traceback" not in leaving.log()
