"""Tail the change log: the entries after a revision, then each new one as it commits.

New entries are noticed two ways: this process's commits wake the tail at
once through the database's :class:`ChangeFeed`; commits by *another*
process sharing the file are seen by a bounded poll (every
:data:`POLL_INTERVAL_S`, a ~10 µs indexed range read). The tail ends when
the database closes (server shutdown), so a watch stream never holds up a
graceful stop.

Example::

    async for entry in tail(db, start_revision=41):
        event = UserEvent.FromString(entry.payload)      # revision 42, 43, ...
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import TypeVar

from services.runtime.errors import InvalidArgument, Unavailable
from services.runtime.metrics import STORAGE_WATCHERS
from services.runtime.storage._backend import Backend, Connection
from services.runtime.storage._events import LogEntry, read_events

__all__ = ["POLL_INTERVAL_S", "tail", "watch_stream"]

E = TypeVar("E")

POLL_INTERVAL_S = 0.15
"""How long a tail waits for a wake-up before it looks at the table anyway."""

_BATCH = 256


async def tail(
    db: Backend, start_revision: int, poll_interval: float | None = None
) -> AsyncGenerator[LogEntry, None]:
    """Yield every log entry with a revision above ``start_revision``, forever (until close).

    Between wake-ups it looks at the log every ``poll_interval`` seconds
    (default: the backend's; None: only when woken).
    """
    last = start_revision
    interval = db.poll_interval if poll_interval is None else poll_interval
    await db.start_listening()

    def batch(conn: Connection) -> list[LogEntry]:
        return read_events(conn, last, _BATCH)

    while not db.changes.closed:
        ticket = db.changes.ticket()
        entries = await db.read(batch)
        for entry in entries:
            yield entry
            last = entry.revision
        if len(entries) < _BATCH:
            await db.changes.wait(ticket, interval)


async def watch_stream(
    start_revision: int, watch: Callable[[int], AsyncIterator[E]]
) -> AsyncGenerator[E, None]:
    """What a Watch RPC streams: the events of ``watch(start_revision)``, then UNAVAILABLE.

    A negative ``start_revision`` is INVALID_ARGUMENT. The log has no end, so
    the events stop only when the store ends its watches (the server is
    stopping): the stream then fails with UNAVAILABLE (``SHUTTING_DOWN``),
    telling the caller to watch again from the last revision it saw.

    Example::

        async for event in watch_stream(request.start_revision, store.watch_users):
            yield WatchUsersResponse(event=event)
    """
    if start_revision < 0:
        raise InvalidArgument(
            "start_revision must not be negative",
            violations=[("start_revision", "must be 0 (the whole log) or a revision seen")],
        )
    STORAGE_WATCHERS.inc()
    try:
        async for event in watch(start_revision):
            yield event
    finally:
        STORAGE_WATCHERS.dec()
    raise Unavailable(
        "the server is stopping: watch again from the last revision you saw",
        reason="SHUTTING_DOWN",
    )
