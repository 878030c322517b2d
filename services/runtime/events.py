"""Durable subscriptions: a service consumes another service's change log (its Watch).

A consumer declares a :class:`Subscription` — the producer's registry name,
its Watch method (found in the generated stubs, e.g.
``/shelf.v1.ShelfService/WatchBooks``) and a handler — and runs a
:class:`Subscriber` next to its server (it is a :class:`Lifecycle` hook).

Guarantees:

- **Exactly once in effect.** The handler runs inside one write transaction
  of the consumer's own store, and the subscription's checkpoint (the last
  producer revision applied, table ``checkpoints``) is written in that SAME
  transaction: a crash can neither lose an event nor apply it twice. The
  transaction first reads the checkpoint; if it is already at or past the
  event's revision it applies nothing. So several instances of the consumer
  service sharing one store may all receive every event (no lease, no
  claim): the effects are idempotent, keyed by the event's revision through
  the checkpoint row, and only the first transaction takes effect.
- **Resumable.** On start the subscriber reads its checkpoint and asks the
  producer for the events after it.
- **Reconnects.** On a disconnect or an error it waits a jittered, growing
  delay (full jitter, capped) and calls again through discovery: any
  instance of the producer will do, since they share one change log.
- **Independent.** It runs as a background task: the producer being down or
  slow never stops the consumer from serving its own calls.
- **Ordered.** Events are applied one at a time in revision order; a handler
  that fails (a bug, the database unreachable) is retried on the same event
  after the backoff, so later events wait rather than being applied out of
  order.
- **Lag is visible.** Prometheus gauges
  ``switchboard_subscription_checkpoint_revision`` and
  ``switchboard_subscription_head_revision`` (label ``subscription``), and
  ``switchboard_subscription_events_total{outcome="applied"|"skipped"}``;
  the producer's own ``switchboard_storage_revision`` is its head.
- **Compaction.** The producers' logs are never compacted today, so a
  checkpoint can always resume. Revisions are gap-free, so a compacted log
  shows up as a jump past ``checkpoint + 1``: the subscriber logs it at ERROR,
  counts it in :attr:`Subscriber.gaps` and goes on; the skipped changes are
  NOT reconciled (no producer offers a snapshot to rebuild from). A producer
  that compacts must add one, and the handler then reconciles from it.

Example::

    BOOKS = Subscription(
        name="loans<-shelf",
        service="shelf",
        method="/shelf.v1.ShelfService/WatchBooks",
        handler=on_book_event,           # (tx, BookEvent) -> None
    )
    subscriber = Subscriber(BOOKS, store.db, client)
    await serve([service], config, hooks=[subscriber])
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message
from prometheus_client import Counter, Gauge

from services.runtime.client._client import Client
from services.runtime.client._retry import MethodSpec
from services.runtime.storage import Backend, Transaction, read_checkpoint, save_checkpoint

__all__ = ["Subscriber", "Subscription", "apply_event"]

log = logging.getLogger("switchboard.events")

# Lag = head - checkpoint. The producer's own ``switchboard_storage_revision`` is its true
# head; HEAD here is the newest revision this consumer has been sent.
CHECKPOINT = Gauge(
    "switchboard_subscription_checkpoint_revision",
    "The last producer revision applied by the subscription (here or by another instance).",
    ("subscription",),
)
HEAD = Gauge(
    "switchboard_subscription_head_revision",
    "The newest producer revision the subscription has received.",
    ("subscription",),
)
EVENTS = Counter(
    "switchboard_subscription_events_total",
    "Events received, by outcome: applied here, or skipped (already applied).",
    ("subscription", "outcome"),
)
GAPS = Counter(
    "switchboard_subscription_gaps_total",
    "Jumps in the producer's revisions (a compacted log): changes not applied.",
    ("subscription",),
)

Handler = Callable[[Transaction, Any], None]


@dataclass(frozen=True)
class Subscription:
    """What a consumer consumes, and what it does with each event.

    ``method`` is a server-streaming Watch whose request has ``start_field``
    (events after that revision) and whose responses carry the event in
    ``event_field``; the event has a ``revision``. ``name`` keys the
    checkpoint row: one per consuming service and producer.
    """

    name: str
    service: str
    method: str
    handler: Handler
    start_field: str = "start_revision"
    event_field: str = "event"

    def request(self, after: int) -> Message:
        """The Watch request for the events after revision ``after``."""
        spec = MethodSpec.of(self.method)
        return spec.request_type(**{self.start_field: after})  # type: ignore[no-any-return]


def apply_event(tx: Transaction, subscription: Subscription, event: Any) -> bool:
    """Apply ``event`` in ``tx`` unless the checkpoint already covers it; True if applied.

    The handler's effects and the new checkpoint commit together.
    Example: ``await db.write(lambda tx: apply_event(tx, sub, event))``.
    """
    revision = int(event.revision)
    if read_checkpoint(tx.conn, subscription.name) >= revision:
        return False
    subscription.handler(tx, event)
    save_checkpoint(tx.conn, subscription.name, revision, tx.now_ns)
    return True


class Subscriber:
    """Runs one :class:`Subscription` in the background of a serving process.

    :attr:`checkpoint` is the last revision applied (here or by another
    instance), :attr:`head` the highest producer revision seen: their
    difference is the lag. :attr:`applied` counts the events this process
    applied, :attr:`skipped` those it found already applied.
    """

    def __init__(
        self,
        subscription: Subscription,
        db: Backend,
        client: Client,
        *,
        backoff_s: float = 0.05,
        backoff_cap_s: float = 2.0,
    ) -> None:
        self.subscription = subscription
        self.checkpoint = 0
        self.head = 0
        self.applied = 0
        self.skipped = 0
        self.gaps = 0
        self._db = db
        self._client = client
        self._backoff = (backoff_s, backoff_cap_s)
        self._task: asyncio.Task[None] | None = None
        name = subscription.name
        self._metrics = (CHECKPOINT.labels(name), HEAD.labels(name), GAPS.labels(name))
        self._outcomes = (EVENTS.labels(name, "applied"), EVENTS.labels(name, "skipped"))

    async def started(self, port: int) -> None:
        """Start consuming (the server is SERVING on ``port``)."""
        del port
        self._task = asyncio.create_task(self.run(), name=f"subscription {self.subscription.name}")

    async def stopping(self) -> None:
        """Stop consuming; an event being applied either commits or never happened."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Consume until cancelled: resume from the checkpoint, reconnect with backoff."""
        name = self.subscription.name
        self.checkpoint = await self._db.read(lambda conn: read_checkpoint(conn, name))
        self._metrics[0].set(self.checkpoint)
        self._metrics[1].set(max(self.head, self.checkpoint))
        log.info("subscription %s resumes after revision %d", name, self.checkpoint)
        delay, failing = self._backoff[0], False
        while True:
            try:
                if await self._consume():
                    delay, failing = self._backoff[0], False
            except Exception as err:  # noqa: BLE001 - any failure: back off, retry the same event
                if not failing:
                    log.warning("subscription %s: %s; reconnecting", name, _describe(err))
                failing = True
            await asyncio.sleep(random.uniform(0, delay))  # full jitter
            delay = min(self._backoff[1], delay * 2)

    async def _consume(self) -> bool:
        """One Watch call from the checkpoint; True if it delivered anything."""
        sub = self.subscription
        conn = await self._client.connect(sub.service)
        delivered = False
        stream: AsyncIterator[Any] = conn.stream(sub.method, sub.request(self.checkpoint))
        async for response in stream:
            event = getattr(response, sub.event_field)
            await self._apply(event)
            delivered = True
        return delivered

    async def _apply(self, event: Any) -> None:
        revision = int(event.revision)
        self.head = max(self.head, revision)
        self._metrics[1].set(self.head)
        if revision > self.checkpoint + 1:
            self.gaps += 1
            self._metrics[2].inc()
            log.error(
                "subscription %s: the producer's log jumps from %d to %d (compacted?):"
                " the changes between are not applied here",
                self.subscription.name,
                self.checkpoint,
                revision,
            )
        applied = await self._db.write(lambda tx: apply_event(tx, self.subscription, event))
        if applied:
            self.applied += 1
        else:
            self.skipped += 1
        self._outcomes[0 if applied else 1].inc()
        self.checkpoint = max(self.checkpoint, revision)
        self._metrics[0].set(self.checkpoint)


def _describe(err: BaseException) -> str:
    """A short, one-line description for the log (no stack trace)."""
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
