"""SQLite durability: SIGKILL during concurrent writes, round after round; no acknowledged loss.

Each round starts the user service on the same data dir, checks that every
write acknowledged in the rounds before is there, writes from several
concurrent clients, and SIGKILLs the process group after a random number of
acknowledgements, while writes are still in flight. After each kill SQLite's
``PRAGMA integrity_check`` must say ``ok``, and every user row must have its
CREATED event in the change log (a change and its event commit together).

``make test`` runs 20 rounds; ``make soak`` runs 100 (``SOAK_DURABILITY_ROUNDS``).
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

import grpc
import grpc.aio
import pytest

from harness import Launcher, Process
from switchboard.user.v1 import user_pb2
from switchboard.user.v1 import user_service_pb2 as us

pytestmark = pytest.mark.e2e

ROUNDS = int(os.environ.get("SOAK_DURABILITY_ROUNDS", "20"))
WRITERS = 8


class Writers:
    """Concurrent CreateUser calls on a plain channel; records what was acknowledged."""

    def __init__(self, address: str, acked: dict[str, str]) -> None:
        self.address = address
        self.acked = acked
        self.acked_now = 0
        self.enough = asyncio.Event()

    async def run(self, kill_after: int) -> None:
        async with grpc.aio.insecure_channel(self.address) as channel:
            create = channel.unary_unary(
                "/switchboard.user.v1.UserService/CreateUser",
                request_serializer=us.CreateUserRequest.SerializeToString,
                response_deserializer=us.CreateUserResponse.FromString,
            )
            await asyncio.gather(*(self._write(create, kill_after) for _ in range(WRITERS)))

    async def _write(self, create: grpc.aio.UnaryUnaryMultiCallable, kill_after: int) -> None:  # type: ignore[type-arg]
        for _ in range(10_000):  # bounded; the kill ends it long before
            request_id = uuid.uuid4().hex
            user = user_pb2.User(email=f"{request_id}@example.com", display_name="Durable")
            try:
                answer = await create(
                    us.CreateUserRequest(user=user, request_id=request_id), timeout=5
                )
            except grpc.aio.AioRpcError:
                return  # the process is gone: this write was never acknowledged
            self.acked[request_id] = answer.user.id
            self.acked_now += 1
            if self.acked_now >= kill_after:
                self.enough.set()


def check_database(path: Path) -> int:
    """Integrity ok, and every user has its CREATED event; returns the number of users."""
    with closing(sqlite3.connect(path)) as conn:  # opening replays the WAL, as a restart would
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        users = {row[0] for row in conn.execute("SELECT id FROM users")}
        created = {
            row[0] for row in conn.execute("SELECT resource_id FROM events WHERE kind = 'CREATED'")
        }
    assert users == created, "a user without its event, or an event without its user"
    return len(users)


async def assert_all_present(proc: Process, acked: dict[str, str]) -> None:
    async with grpc.aio.insecure_channel(proc.address) as channel:
        list_users = channel.unary_unary(
            "/switchboard.user.v1.UserService/ListUsers",
            request_serializer=us.ListUsersRequest.SerializeToString,
            response_deserializer=us.ListUsersResponse.FromString,
        )
        present: set[str] = set()
        token = ""
        for _ in range(1_000):  # bounded: 1000 users per page
            page = await list_users(
                us.ListUsersRequest(page_size=1000, page_token=token), timeout=10
            )
            present |= {u.id for u in page.users}
            token = page.next_page_token
            if not token:
                break
    lost = set(acked.values()) - present
    assert not lost, f"{len(lost)} acknowledged writes lost"


async def test_acknowledged_writes_survive_sigkill(launcher: Launcher, tmp_path: Path) -> None:
    data = tmp_path / "user"
    proc = launcher.prepare("services.user", "--data-dir", str(data))
    rounds = random.Random(20260101)
    acked: dict[str, str] = {}
    for _ in range(ROUNDS):
        await proc.start()
        await assert_all_present(proc, acked)
        writers = Writers(proc.address, acked)
        work = asyncio.create_task(writers.run(kill_after=rounds.randint(3, 40)))
        await asyncio.wait_for(writers.enough.wait(), 20)
        proc.kill()  # while the writers keep writing
        await proc.wait_exit()
        await asyncio.wait_for(work, 20)
        assert check_database(data / "user.db") >= len(acked)
    await proc.start()
    await assert_all_present(proc, acked)
    assert len(acked) >= ROUNDS * 3
