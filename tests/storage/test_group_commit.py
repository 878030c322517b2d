"""Group commit: waiting writes share one transaction, each still succeeds or fails alone,
and nothing is acknowledged before its COMMIT returned.

To make a batch deterministic, a "gate" write holds the writer thread (it
waits on a threading.Event inside its transaction) while the writes under
test queue up behind it; opening the gate lets the writer take them all at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import prometheus_client
import pytest

from services.runtime import metrics
from services.runtime.errors import AlreadyExists, Unavailable
from services.runtime.storage import (
    CORE_TABLES,
    Database,
    Migration,
    Transaction,
    _group_commit,
    head_revision,
    read_events,
)
from services.runtime.storage._group_commit import MAX_BATCH_WRITES, GroupCommitWriter

MIGRATIONS = (
    Migration(1, "core + things", (*CORE_TABLES, "CREATE TABLE things (id TEXT PRIMARY KEY)")),
)
BOUND_S = 5.0


class _Gate:
    """A write that holds the writer thread until :meth:`open` (bounded wait)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self._release = threading.Event()

    def __call__(self, tx: Transaction) -> str:
        self.entered.set()
        assert self._release.wait(BOUND_S), "the gate was never opened"
        return "gate"

    def open(self) -> None:
        self._release.set()


class _Conn(sqlite3.Connection):
    """The writer's connection, counting COMMITs; those from ``fail_from`` on fail."""

    fail_from: int | None = None
    commits = 0

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        failing = self.fail_from is not None and self.commits >= self.fail_from
        if sql == "COMMIT" and failing:
            raise sqlite3.OperationalError("disk I/O error (injected)")
        cursor = super().execute(sql, parameters)
        if sql == "COMMIT":
            type(self).commits += 1
        return cursor


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A migrated database file (its own loop connection is closed again)."""
    db = Database.open(tmp_path / "gc.db", MIGRATIONS)
    db.close()
    return tmp_path / "gc.db"


class _Writer:
    """A GroupCommitWriter on ``path`` whose committed batch sizes are recorded."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.batches: list[int] = []
        self.changes = 0
        _Conn.fail_from, _Conn.commits = None, 0
        self.writer = GroupCommitWriter(self._connect, "test-write", self._done, self._changed)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, factory=_Conn)
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    def _done(self, writes: int, revision: int | None) -> None:
        self.batches.append(writes)

    def _changed(self) -> None:
        self.changes += 1

    def rows(self) -> list[str]:
        with sqlite3.connect(self.path) as check:
            return [r[0] for r in check.execute("SELECT id FROM things ORDER BY id")]

    def revision(self) -> int:
        with sqlite3.connect(self.path) as check:
            return head_revision(check)


@pytest.fixture
def gc(path: Path) -> Iterator[_Writer]:
    writer = _Writer(path)
    yield writer
    writer.writer.close()


def _add(thing_id: str) -> Callable[[Transaction], int]:
    def add(tx: Transaction) -> int:
        tx.conn.execute("INSERT INTO things (id) VALUES (?)", (thing_id,))
        return tx.append_event(thing_id, "CREATED", thing_id.encode())

    return add


async def _behind_gate(gc: _Writer, fns: list[Callable[[Transaction], Any]]) -> list[Any]:
    """Run ``fns`` as one batch: queued while a gate write holds the writer thread."""
    gate = _Gate()
    held = asyncio.ensure_future(gc.writer.submit(gate))
    assert await asyncio.to_thread(gate.entered.wait, BOUND_S)
    tasks = [asyncio.ensure_future(gc.writer.submit(fn)) for fn in fns]
    await asyncio.sleep(0)  # every task has queued its write
    gate.open()
    assert await asyncio.wait_for(held, BOUND_S) == "gate"
    return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), BOUND_S)


async def test_waiting_writes_commit_together_one_failing_alone(gc: _Writer) -> None:
    def dup(tx: Transaction) -> int:
        _add("dup")(tx)  # changed something before failing: undone with its savepoint
        raise AlreadyExists("dup exists", resource_type="thing", resource_name="dup")

    def broken(tx: Transaction) -> None:
        tx.conn.execute("INSERT INTO things (id) VALUES ('a')")  # a's primary key: refused

    outcomes = await _behind_gate(gc, [_add("a"), dup, _add("b"), broken, _add("c")])
    assert outcomes[0] == 1 and outcomes[2] == 2 and outcomes[4] == 3
    assert isinstance(outcomes[1], AlreadyExists)
    assert isinstance(outcomes[3], sqlite3.IntegrityError)
    assert gc.batches == [1, 5]  # the gate alone, then the five in one transaction
    assert gc.rows() == ["a", "b", "c"]
    assert gc.revision() == 3  # gap-free: the failed writes used no revision


async def test_a_failed_commit_acknowledges_none_of_its_batch(gc: _Writer) -> None:
    _Conn.fail_from = 1  # the gate's COMMIT (the first) succeeds, the batch's fails
    outcomes = await _behind_gate(gc, [_add("a"), _add("b"), _add("c")])
    assert all(isinstance(o, sqlite3.OperationalError) for o in outcomes), outcomes
    assert gc.rows() == [] and gc.revision() == 0
    _Conn.fail_from = None
    assert await gc.writer.submit(_add("d")) == 1  # the writer goes on after the failure
    assert gc.rows() == ["d"]


async def test_no_write_is_answered_before_its_commit_returned(gc: _Writer) -> None:
    seen: list[int] = []

    def answered(_: asyncio.Future[Any]) -> None:
        seen.append(_Conn.commits)

    commits_before = _Conn.commits
    gate = _Gate()
    held = asyncio.ensure_future(gc.writer.submit(gate))
    assert await asyncio.to_thread(gate.entered.wait, BOUND_S)
    tasks = [asyncio.ensure_future(gc.writer.submit(_add(f"t{i}"))) for i in range(8)]
    for task in tasks:
        task.add_done_callback(answered)
    await asyncio.sleep(0)
    gate.open()
    await asyncio.wait_for(asyncio.gather(held, *tasks), BOUND_S)
    # The gate's COMMIT, then the eight's: each answer came after the one that held it.
    assert seen == [commits_before + 2] * 8


async def test_an_error_that_ends_the_transaction_fails_only_its_write(gc: _Writer) -> None:
    def abort(tx: Transaction) -> None:
        tx.conn.execute("INSERT INTO things (id) VALUES ('x')")
        tx.conn.execute("ROLLBACK")  # as SQLite does itself on a full disk or an I/O error
        raise sqlite3.OperationalError("database or disk is full (simulated)")

    outcomes = await _behind_gate(gc, [_add("a"), abort, _add("b")])
    assert outcomes[0] == 1 and outcomes[2] == 2
    assert isinstance(outcomes[1], sqlite3.OperationalError)
    assert gc.rows() == ["a", "b"]  # the others ran again, in a new transaction, once


async def test_a_write_cancelled_while_queued_never_runs(gc: _Writer) -> None:
    gate = _Gate()
    held = asyncio.ensure_future(gc.writer.submit(gate))
    assert await asyncio.to_thread(gate.entered.wait, BOUND_S)
    cancelled = asyncio.ensure_future(gc.writer.submit(_add("gone")))
    kept = asyncio.ensure_future(gc.writer.submit(_add("kept")))
    await asyncio.sleep(0)
    cancelled.cancel()
    gate.open()
    await asyncio.wait_for(asyncio.gather(held, kept), BOUND_S)
    assert cancelled.cancelled()
    assert gc.rows() == ["kept"]


async def test_batches_are_bounded_in_writes(gc: _Writer) -> None:
    count = MAX_BATCH_WRITES + 10
    outcomes = await _behind_gate(gc, [_add(f"t{i:03}") for i in range(count)])
    assert outcomes == list(range(1, count + 1))
    assert gc.batches == [1, MAX_BATCH_WRITES, 10]


async def test_batches_are_bounded_in_logged_bytes(
    gc: _Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_group_commit, "MAX_BATCH_LOG_BYTES", 10)

    def big(thing_id: str) -> Callable[[Transaction], int]:
        return lambda tx: tx.append_event(thing_id, "CREATED", b"x" * 6)

    outcomes = await _behind_gate(gc, [big("a"), big("b"), big("c"), big("d")])
    assert outcomes == [1, 2, 3, 4]
    assert gc.batches == [1, 2, 2]  # a batch commits once it logged 10 bytes or more


async def test_one_wake_up_per_committed_batch_that_changed_the_log(gc: _Writer) -> None:
    await _behind_gate(gc, [_add("a"), _add("b"), _add("c")])
    assert gc.changes == 1  # the gate appended nothing; the three wake watchers once


async def test_close_fails_later_writes_unavailable(path: Path) -> None:
    writer = _Writer(path)
    assert await writer.writer.submit(_add("a")) == 1
    writer.writer.close()
    with pytest.raises(Unavailable):
        await writer.writer.submit(_add("b"))


async def test_concurrent_writes_share_commits_and_the_metric_says_so(tmp_path: Path) -> None:
    db = Database.open(tmp_path / "batchmetric.db", MIGRATIONS)
    try:
        before = _batch_samples("batchmetric")
        gate = _Gate()
        held = asyncio.ensure_future(db.write(gate))
        assert await asyncio.to_thread(gate.entered.wait, BOUND_S)
        writes: list[Awaitable[int]] = [db.write(_add(f"t{i}")) for i in range(20)]
        tasks = [asyncio.ensure_future(w) for w in writes]
        await asyncio.sleep(0)
        gate.open()
        await asyncio.wait_for(asyncio.gather(held, *tasks), BOUND_S)
        count, total = (a - b for a, b in zip(_batch_samples("batchmetric"), before, strict=True))
        assert (count, total) == (2, 21)  # the gate, then the twenty in one commit
        assert [e.revision for e in read_events(db.conn, 0, 100)] == list(range(1, 21))
        text = (await metrics.exposition()).decode()
        assert 'switchboard_storage_commit_batch_writes_bucket{database="batchmetric"' in text
    finally:
        db.close()


def _batch_samples(database: str) -> tuple[float, float]:
    """(batches, writes) committed so far for ``database``, from the histogram."""
    labels = {"database": database}
    registry = prometheus_client.REGISTRY
    count = registry.get_sample_value("switchboard_storage_commit_batch_writes_count", labels)
    total = registry.get_sample_value("switchboard_storage_commit_batch_writes_sum", labels)
    return (count or 0.0, total or 0.0)


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every commit delay the writer takes (each still sleeps)."""
    taken: list[float] = []
    pause = _group_commit._wait_for_more

    def counted() -> None:
        taken.append(_group_commit.COMMIT_DELAY_S)
        pause()

    monkeypatch.setattr(_group_commit, "_wait_for_more", counted)
    return taken


async def test_a_lone_writer_is_never_delayed(gc: _Writer, pauses: list[float]) -> None:
    for i in range(5):
        assert await gc.writer.submit(_add(f"t{i}")) == i + 1
    assert pauses == []  # nothing was waiting after any COMMIT: no load, no delay


async def test_under_load_a_small_batch_waits_for_more(gc: _Writer, pauses: list[float]) -> None:
    await _behind_gate(gc, [_add("a"), _add("b"), _add("c")])
    # The gate's COMMIT found three writes waiting (load), fewer than GATHERED: one delay.
    assert pauses == [_group_commit.COMMIT_DELAY_S]
    assert gc.batches == [1, 3]


async def test_enough_waiting_writes_run_without_delay(gc: _Writer, pauses: list[float]) -> None:
    count = _group_commit.GATHERED
    await _behind_gate(gc, [_add(f"t{i}") for i in range(count)])
    assert pauses == []
    assert gc.batches == [1, count]
