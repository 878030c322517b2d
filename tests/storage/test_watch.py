"""Tailing the change log: history, then live commits of this and of other processes."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from services.runtime.storage import (
    CORE_TABLES,
    Database,
    LogEntry,
    Migration,
    Transaction,
    connect,
    tail,
    transaction,
)

MIGRATIONS = (Migration(1, "core", CORE_TABLES),)
BOUND_S = 3.0


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.open(tmp_path / "w.db", MIGRATIONS)
    yield database
    database.close()


def _event(tx: Transaction, payload: bytes) -> int:
    return tx.append_event("r", "CHANGED", payload)


def _appender(payload: bytes) -> Callable[[Transaction], int]:
    return lambda tx: _event(tx, payload)


async def _take(entries: AsyncIterator[LogEntry], count: int) -> list[LogEntry]:
    async with asyncio.timeout(BOUND_S):
        return [await anext(entries) for _ in range(count)]


async def test_history_after_the_start_revision_then_live(db: Database) -> None:
    for payload in (b"1", b"2", b"3"):
        await db.write(_appender(payload))
    entries = tail(db, start_revision=1)
    assert [e.payload for e in await _take(entries, 2)] == [b"2", b"3"]
    await db.write(lambda tx: _event(tx, b"4"))
    assert await _take(entries, 1) == [LogEntry(4, b"4")]
    await entries.aclose()


async def test_own_commit_wakes_the_tail_without_waiting_for_the_poll(db: Database) -> None:
    entries = tail(db, 0, poll_interval=60.0)
    waiting = asyncio.ensure_future(_take(entries, 1))
    await asyncio.sleep(0)
    await db.write(lambda tx: _event(tx, b"x"))
    assert [e.payload for e in await waiting] == [b"x"]
    await entries.aclose()


async def test_commit_of_another_process_is_seen_by_the_poll(db: Database) -> None:
    other: sqlite3.Connection = connect(db.path)  # stands for a second process
    entries = tail(db, 0, poll_interval=0.05)
    waiting = asyncio.ensure_future(_take(entries, 1))
    await asyncio.sleep(0)
    with transaction(other) as tx:
        _event(tx, b"elsewhere")
    assert [e.payload for e in await waiting] == [b"elsewhere"]
    other.close()
    await entries.aclose()


async def test_tail_ends_when_watches_are_ended(db: Database) -> None:
    entries = tail(db, 0, poll_interval=60.0)
    waiting = asyncio.ensure_future(_take(entries, 1))
    await asyncio.sleep(0)
    db.changes.close()
    with pytest.raises(StopAsyncIteration):
        await waiting
