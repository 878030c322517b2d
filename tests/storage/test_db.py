"""Database: connection settings, transactions, revisions, secrets and the data dir."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.runtime.errors import Unavailable
from services.runtime.storage import (
    BUSY_TIMEOUT_MS,
    CORE_TABLES,
    Database,
    Migration,
    Transaction,
    head_revision,
    make_etag,
    new_id,
    read_events,
    resolve_data_dir,
    timestamp,
    transaction,
)

MIGRATIONS = (Migration(1, "core + things", (*CORE_TABLES, "CREATE TABLE things (id TEXT)")),)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.open(tmp_path / "data" / "t.db", MIGRATIONS)
    yield database
    database.close()


def _add(tx: Transaction, thing_id: str) -> int:
    tx.conn.execute("INSERT INTO things (id) VALUES (?)", (thing_id,))
    return tx.append_event(thing_id, "CREATED", thing_id.encode())


def test_settings_of_every_connection(db: Database) -> None:
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.conn.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_MS


async def test_writer_thread_connection_has_the_same_settings(db: Database) -> None:
    def settings(tx: Transaction) -> tuple[int, int]:
        sync = tx.conn.execute("PRAGMA synchronous").fetchone()[0]
        return sync, tx.conn.execute("PRAGMA foreign_keys").fetchone()[0]

    assert await db.write(settings) == (2, 1)


async def test_revisions_increase_and_events_commit_with_the_change(db: Database) -> None:
    first = await db.write(lambda tx: _add(tx, "a"))
    second = await db.write(lambda tx: _add(tx, "b"))
    assert (first, second) == (1, 2)
    assert head_revision(db.conn) == 2
    assert [e.payload for e in read_events(db.conn, 0, 10)] == [b"a", b"b"]


async def test_failed_transaction_leaves_no_trace(db: Database) -> None:
    def fail(tx: Transaction) -> None:
        _add(tx, "x")
        raise ValueError("boom")

    with pytest.raises(ValueError):
        await db.write(fail)
    assert db.conn.execute("SELECT count(*) FROM things").fetchone()[0] == 0
    assert read_events(db.conn, 0, 10) == []
    assert await db.write(lambda tx: _add(tx, "y")) == 1  # the revision was not used up


async def test_commit_wakes_waiters(db: Database) -> None:
    ticket = db.changes.ticket()
    await db.write(lambda tx: _add(tx, "a"))
    assert ticket.is_set()


async def test_transaction_without_event_wakes_nobody(db: Database) -> None:
    ticket = db.changes.ticket()
    await db.write(lambda tx: tx.conn.execute("INSERT INTO things (id) VALUES ('q')"))
    assert not ticket.is_set()


def test_lock_held_by_another_process_becomes_unavailable(tmp_path: Path, db: Database) -> None:
    other = sqlite3.connect(db.path, isolation_level=None)
    impatient = sqlite3.connect(db.path, isolation_level=None, timeout=0.05)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(Unavailable), transaction(impatient):
            pass
    finally:
        other.execute("ROLLBACK")
        other.close()
        impatient.close()


async def test_big_reads_run_on_the_reader_thread(db: Database) -> None:
    await db.write(lambda tx: _add(tx, "a"))
    rows = await db.read_in_thread(lambda conn: conn.execute("SELECT id FROM things").fetchall())
    assert rows == [("a",)]


def test_secret_is_random_once_then_stable(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    first = Database.open(path, MIGRATIONS)
    secret = first.secret("page_token")
    assert len(secret) == 32 and secret != first.secret("other")
    first.close()
    again = Database.open(path, MIGRATIONS)
    assert again.secret("page_token") == secret
    again.close()


def test_data_dir_flag_beats_environment_beats_default() -> None:
    env = {"SWITCHBOARD_DATA_DIR": "/srv/sb"}
    assert resolve_data_dir("/flag", env) == Path("/flag")
    assert resolve_data_dir(None, env) == Path("/srv/sb")
    assert resolve_data_dir(None, {}) == Path("var")


def test_ids_are_unique_sortable_hex() -> None:
    ids = [new_id() for _ in range(200)]
    assert len(set(ids)) == 200
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_etag_changes_with_the_revision() -> None:
    assert make_etag("a", 1) == make_etag("a", 1)
    assert len({make_etag("a", 1), make_etag("a", 2), make_etag("b", 1)}) == 3


def test_timestamp_from_nanoseconds() -> None:
    stamp = timestamp(1_700_000_000_123_456_789)
    assert (stamp.seconds, stamp.nanos) == (1_700_000_000, 123_456_789)


async def test_close_finishes_queued_writes(tmp_path: Path) -> None:
    database = Database.open(tmp_path / "c.db", MIGRATIONS)
    pending = asyncio.ensure_future(database.write(lambda tx: _add(tx, "late")))
    await asyncio.sleep(0)  # let the write reach the writer thread's queue
    database.close()
    assert await pending == 1
    check = sqlite3.connect(tmp_path / "c.db")
    assert check.execute("SELECT id FROM things").fetchall() == [("late",)]
    check.close()
