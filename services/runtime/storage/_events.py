"""The append-only change log: one ``events`` row per committed state change.

Each row holds a revision (``INTEGER PRIMARY KEY AUTOINCREMENT``: strictly
increasing, never reused), the id of the resource it touched, a short kind,
the commit time and the serialized event proto. Rows are only ever inserted:
the log is never compacted, so any revision a watcher saw can be resumed from.

A transaction takes its revision *before* it writes anything (it holds the
write lock from ``BEGIN IMMEDIATE``, so nobody else can take the same number);
that lets the resource rows carry the revision of their last change (their
etag) and the event proto carry its own revision.

:class:`ChangeFeed` wakes the watchers of this process when it commits; a
short poll picks up what other processes sharing the file commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, NamedTuple, Protocol, TypeVar

if TYPE_CHECKING:
    from services.runtime.storage._backend import Connection

__all__ = [
    "ChangeFeed",
    "LogEntry",
    "append_event",
    "head_revision",
    "in_revision_order",
    "next_revision",
    "read_events",
]

EVENTS_TABLE = (
    "CREATE TABLE events ("
    " revision INTEGER PRIMARY KEY AUTOINCREMENT,"
    " resource_id TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " commit_time_ns INTEGER NOT NULL,"
    " payload BLOB NOT NULL)"
)


class LogEntry(NamedTuple):
    """One row of the change log: its revision and the serialized event proto."""

    revision: int
    payload: bytes


def head_revision(conn: Connection) -> int:
    """The last committed revision (0 for an empty log)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    return int(row[0]) if row is not None else 0


def next_revision(conn: Connection) -> int:
    """The revision the current write transaction will append (caller holds the write lock)."""
    return head_revision(conn) + 1


def append_event(
    conn: Connection,
    revision: int,
    resource_id: str,
    kind: str,
    commit_time_ns: int,
    payload: bytes,
) -> None:
    """Insert one log row with the revision taken from :func:`next_revision`."""
    conn.execute(
        "INSERT INTO events (revision, resource_id, kind, commit_time_ns, payload)"
        " VALUES (?, ?, ?, ?, ?)",
        (revision, resource_id, kind, commit_time_ns, payload),
    )


def read_events(conn: Connection, after: int, limit: int) -> list[LogEntry]:
    """Up to ``limit`` log rows with a revision above ``after``, oldest first."""
    rows = conn.execute(
        "SELECT revision, payload FROM events WHERE revision > ? ORDER BY revision LIMIT ?",
        (after, limit),
    ).fetchall()
    return [LogEntry(int(revision), bytes(payload)) for revision, payload in rows]


class Revisioned(Protocol):
    """An event proto: it carries the revision of its change."""

    @property
    def revision(self) -> int:
        """The change's revision in the log."""
        ...


E = TypeVar("E", bound=Revisioned)


def in_revision_order(events: Iterable[E]) -> Iterator[E]:
    """``events``, checked to come in strictly increasing revision order (for a replay).

    Raises ValueError at the first event out of order. Example::

        for event in in_revision_order(events):
            apply(state, event)
    """
    last = 0
    for event in events:
        if event.revision <= last:
            raise ValueError(f"events out of order: {event.revision} after {last}")
        last = event.revision
        yield event


class ChangeFeed:
    """Wakes this process's watchers when a commit lands (or a poll interval passes).

    A waiter takes a :meth:`ticket` *before* it reads the log, then waits on
    it: a commit between the read and the wait has already set the ticket, so
    no change is missed and nobody waits a full poll interval for it.

    Example::

        ticket = feed.ticket()
        entries = read_events(conn, last, 100)
        if not entries:
            await feed.wait(ticket, max_wait=0.15)
    """

    def __init__(self) -> None:
        self._current = asyncio.Event()
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called: watchers should end their streams."""
        return self._closed

    def ticket(self) -> asyncio.Event:
        """The event the next :meth:`notify` will set."""
        return self._current

    def notify(self) -> None:
        """Wake every waiter (called after each commit of this process)."""
        current, self._current = self._current, asyncio.Event()
        current.set()

    def close(self) -> None:
        """Wake every waiter for the last time; :attr:`closed` tells them to stop."""
        self._closed = True
        self.notify()

    async def wait(self, ticket: asyncio.Event, max_wait: float | None) -> None:
        """Return when ``ticket`` is set or after ``max_wait`` seconds (None: no bound),
        whichever is first."""
        if ticket.is_set():
            return
        if max_wait is None:
            await ticket.wait()
            return
        try:
            async with asyncio.timeout(max_wait):
                await ticket.wait()
        except TimeoutError:
            return
