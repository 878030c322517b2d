"""Group commit: one writer thread commits every waiting write in ONE transaction, one fsync.

With ``synchronous=FULL`` each commit waits for an fsync of the WAL (0.2 ms
on a quiet disk, 5-10 ms on a busy shared one), and one writer thread
commits one transaction at a time, so a store committing each write alone
does at most one write per fsync. The writer here takes every write waiting
in its queue (up to :data:`MAX_BATCH_WRITES`, and no more once the batch
has logged :data:`MAX_BATCH_LOG_BYTES`) and runs them in one ``BEGIN
IMMEDIATE`` ... ``COMMIT``: one fsync for the whole batch.

Each write still succeeds or fails on its own, and nothing is acknowledged
before it is durable:

- Every write runs inside its own ``SAVEPOINT``: one that raises (a
  constraint, AlreadyExists, a reused request_id) is rolled back to its
  savepoint alone; the others of the batch go on.
- Futures are resolved only after ``COMMIT`` returned (fsync done). If the
  COMMIT fails, every write of the batch gets that error (also those that
  failed on their own: their answer may have depended on a write that is
  now undone) and nothing is acknowledged.
- An error that ends the whole transaction (SQLite rolls back by itself on
  e.g. a full disk or an I/O error) fails the write that hit it; every
  other write of the batch runs again, in a new transaction.
- Writes run in the order they were queued, each seeing the ones before it,
  so revisions stay gap-free and in commit order.

A write whose caller was cancelled before it ran never runs (as with a
plain thread hop); one already run completes with its batch.

Under load a batch may wait :data:`COMMIT_DELAY_S` (1 ms) for more writes
before it runs: through the user service (ghz, 32 CreateUser in flight, a
loaded 2-core VM) that took the mean batch from ~1.3 to ~2.6 writes and
server CPU per call down 5-18 % in five interleaved pairs. "Under load"
means the previous COMMIT found writes already waiting, so a lone writer
is never delayed.

Example::

    writer = GroupCommitWriter(lambda: connect(path), "sqlite-write", on_commit, feed.notify)
    revision = await writer.submit(lambda tx: tx.append_event("b1", "CREATED", b""))
    writer.close()
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from services.runtime.errors import Unavailable
from services.runtime.storage._backend import Transaction
from services.runtime.storage._events import next_revision

__all__ = [
    "COMMIT_DELAY_S",
    "GATHERED",
    "MAX_BATCH_LOG_BYTES",
    "MAX_BATCH_WRITES",
    "BatchDone",
    "GroupCommitWriter",
    "begin_immediate",
]

T = TypeVar("T")

log = logging.getLogger("switchboard.storage")

MAX_BATCH_WRITES = 64
"""Writes per transaction at most. At ~50-150 µs of work each, a full batch holds its
first write back by a few ms, far less than the fsync it saves each of the others."""

MAX_BATCH_LOG_BYTES = 1 << 20
"""Change-log bytes after which a batch commits (the rest waits for the next one):
bounds the WAL one commit writes when writes carry big resources."""

COMMIT_DELAY_S = 0.001
"""Under load, how long a batch waits for more writes before it runs (PostgreSQL's
``commit_delay`` idea). Only when the last COMMIT found writes already waiting (so a
lone writer is never delayed) and fewer than :data:`GATHERED` wait: the event loop
then parses the next requests, which join this batch instead of paying a COMMIT each."""

GATHERED = 8
"""Writes waiting that make a batch worth running at once, without the delay."""

BatchDone = Callable[[int, int | None], None]
"""Called on the writer thread after each COMMIT: ``(writes in it, last revision or None)``."""


@dataclass(eq=False)
class _Write:
    """One queued write: its function, and the future its caller awaits."""

    fn: Callable[[Transaction], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop

    @property
    def cancelled(self) -> bool:
        """The caller is gone (``Task.cancel`` cancels the future it awaits at once).

        Read on the writer thread: one attribute read under the GIL, no loop call.
        """
        return self.future.cancelled()


@dataclass(eq=False)
class _Outcome:
    """What one write of a batch came to: a value, or an error, and its revision."""

    write: _Write
    value: Any = None
    error: BaseException | None = None
    revision: int | None = None


@dataclass(eq=False)
class _Batch:
    """The outcomes of one transaction, and the writes left for the next one."""

    outcomes: list[_Outcome] = field(default_factory=list)
    again: list[_Write] = field(default_factory=list)
    logged_bytes: int = 0
    committed: bool = False

    @property
    def revision(self) -> int | None:
        """The last revision the batch appended (None: it appended nothing)."""
        return max((o.revision for o in self.outcomes if o.revision is not None), default=None)


class _Aborted(Exception):
    """A write's error ended the whole transaction (SQLite rolled it back itself)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


_STOP: Any = object()


class GroupCommitWriter:
    """A writer thread with its own connection that commits queued writes in batches."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        name: str,
        on_commit: BatchDone,
        on_change: Callable[[], None],
    ) -> None:
        """``on_commit`` runs on the writer thread after each COMMIT; ``on_change`` on the
        callers' loop once a committed batch appended to the change log."""
        self._connect = connect
        self._on_commit = on_commit
        self._on_change = on_change
        self._queue: queue.SimpleQueue[_Write] = queue.SimpleQueue()
        self._again: deque[_Write] = deque()
        self._closed = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    async def submit(self, fn: Callable[[Transaction], T]) -> T:
        """Run ``fn`` in the next batch; return its result once the batch is committed."""
        if self._closed:
            raise Unavailable("the database is closed (the server is stopping)")
        loop = asyncio.get_running_loop()
        write = _Write(fn, loop.create_future(), loop)
        self._queue.put(write)
        return await write.future  # type: ignore[no-any-return]

    def close(self) -> None:
        """Commit what is queued, stop the thread; later writes are UNAVAILABLE."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        while (writes := self._take()) is not None:
            try:
                conn = conn or self._connect()
                batch = _commit(conn, writes)
                # Writes that arrived while it ran (not ones sent in answer to it): load.
                self._busy = not self._queue.empty()
                self._deliver(batch)
            except BaseException as err:  # a bug or a lost connection: fail the batch, go on
                log.exception("the writer thread failed a batch of %d writes", len(writes))
                self._deliver(_Batch([_Outcome(w, error=err) for w in writes]))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def _take(self) -> list[_Write] | None:
        """The next batch: writes to run again first, then everything queued (the first
        blocking); None once stopped and drained."""
        writes = [self._again.popleft() for _ in range(min(len(self._again), MAX_BATCH_WRITES))]
        if not writes:
            first = self._queue.get()
            if first is _STOP:
                return None
            writes.append(first)
        if self._busy and len(writes) + self._queue.qsize() < GATHERED:
            _wait_for_more()
        while len(writes) < MAX_BATCH_WRITES:
            try:
                write = self._queue.get_nowait()
            except queue.Empty:
                break
            if write is _STOP:
                self._queue.put(_STOP)  # after this batch
                break
            writes.append(write)
        return writes

    def _deliver(self, batch: _Batch) -> None:
        """Resolve the batch's futures on their loops (one wake-up per loop)."""
        self._again.extend(batch.again)
        changed = batch.committed and batch.revision is not None
        if batch.committed:
            self._report(len(batch.outcomes), batch.revision)
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for outcome in batch.outcomes:
            by_loop.setdefault(outcome.write.loop, []).append(outcome)
        for loop, outcomes in by_loop.items():
            try:
                loop.call_soon_threadsafe(self._settle, outcomes, changed)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                log.debug("a write's event loop closed before its answer")

    def _report(self, writes: int, revision: int | None) -> None:
        """``on_commit``; its failure must not turn committed writes into errors."""
        try:
            self._on_commit(writes, revision)
        except Exception:
            log.exception("reporting a committed batch failed")

    def _settle(self, outcomes: list[_Outcome], changed: bool) -> None:
        """On the loop: answer every caller, then wake the watchers once."""
        for outcome in outcomes:
            future = outcome.write.future
            if future.done():
                continue
            if outcome.error is not None:
                future.set_exception(outcome.error)
            else:
                future.set_result(outcome.value)
        if changed:
            self._on_change()


def _wait_for_more() -> None:
    """Sleep :data:`COMMIT_DELAY_S` (releasing the GIL: the loop queues more meanwhile)."""
    time.sleep(COMMIT_DELAY_S)


def begin_immediate(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``: the write lock up front; still held by another process after
    the busy timeout, UNAVAILABLE."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as err:
        if getattr(err, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            raise Unavailable("the database is busy; retry", retry_delay=0.1) from None
        raise


def _commit(conn: sqlite3.Connection, writes: list[_Write]) -> _Batch:
    """Run ``writes`` in one transaction and commit it; the outcomes to deliver."""
    try:
        begin_immediate(conn)
    except Exception as err:
        return _Batch([_Outcome(w, error=err) for w in writes if not w.cancelled])
    batch = _Batch()
    for index, write in enumerate(writes):
        if write.cancelled:
            continue
        if batch.logged_bytes >= MAX_BATCH_LOG_BYTES:
            batch.again = writes[index:]
            break
        try:
            batch.outcomes.append(_run_one(conn, write, batch))
        except _Aborted as aborted:
            ran = [o.write for o in batch.outcomes]
            return _Batch(
                [_Outcome(write, error=aborted.error)], again=[*ran, *writes[index + 1 :]]
            )
    try:
        conn.execute("COMMIT")
    except Exception as err:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        batch.outcomes = [_Outcome(o.write, error=err) for o in batch.outcomes]
        return batch
    batch.committed = True
    return batch


def _run_one(conn: sqlite3.Connection, write: _Write, batch: _Batch) -> _Outcome:
    """``write.fn`` inside its own savepoint: its error undoes it alone."""
    conn.execute("SAVEPOINT write")
    tx = Transaction(conn, lambda: next_revision(conn))
    try:
        value = write.fn(tx)
    except Exception as err:
        if not conn.in_transaction:
            raise _Aborted(err) from err
        conn.execute("ROLLBACK TO write")
        conn.execute("RELEASE write")
        return _Outcome(write, error=err)
    conn.execute("RELEASE write")
    batch.logged_bytes += tx.logged_bytes
    return _Outcome(write, value=value, revision=tx.last_appended)
