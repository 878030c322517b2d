"""The sellers product knows exist: a projection of the user service's change log.

Table ``sellers`` holds the id of every user that exists as of the
subscription's checkpoint (ids only, not the users). The subscription's
handler (:mod:`services.product._delist`) keeps it in the SAME transaction as
the checkpoint, so a crash never leaves it out of step: a CREATED or UPDATED
event adds the id, a DELETED event removes it (and delists the products).

The seller check asks the projection first (:class:`ProjectedSellers`): a
seller found there needs no call. A miss (a user created a moment ago, not
consumed yet) falls back to ``GetUser`` on the user service, so correctness
never depends on the projection being current; the projection only ever
errs towards "absent", which costs a call and nothing else.

The one window: a seller deleted at the user service whose DELETED event is
not consumed yet is still in the projection, and a create for them is
accepted. That is the window a ``GetUser`` check has always had (check, then
the seller is deleted, then the create commits); the delisting closes it,
since the DELETED event, once consumed, delists every product of the seller,
including that one. After the DELETED event is consumed a create is refused:
the seller is gone from the projection AND ``GetUser`` answers NOT_FOUND.

Rebuild (the "snapshot"): a projection that is not known to be complete — a
database migrated from a version without it, whose subscription had already
consumed events, or one whose producer's log jumped (a compacted log: the
changes in between are unknown) — has no row ``product<-user/sellers`` in
``checkpoints``. :class:`SellerRebuild` then reads the user log from its
start (the user service never compacts it, so the log IS the snapshot), folds
it into the set of live ids in memory, and installs that set in one
transaction, but only once it has read up to the subscription's checkpoint
read in that same transaction (else it reads on and tries again): the
projection then equals the log up to at least the checkpoint. Meanwhile the
incomplete projection only misses ids, so every check stays correct.

Example::

    sellers = ProjectedSellers(store.db, UserServiceSellers(users))
    if await sellers.exists(seller_id): ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, Callable, Iterable

from prometheus_client import Counter

from services.product._sellers import SellerDirectory
from services.runtime.storage import (
    Backend,
    Connection,
    Transaction,
    read_checkpoint,
    save_checkpoint,
)
from switchboard.user.v1 import user_pb2

__all__ = [
    "BUILT",
    "MARK_BUILT_IF_NEW",
    "POSTGRES_SELLERS_TABLE",
    "SELLERS_TABLE",
    "SUBSCRIPTION",
    "ProjectedSellers",
    "SellerRebuild",
    "forget_sellers",
    "is_built",
    "is_seller",
    "project",
]

log = logging.getLogger("switchboard.product.sellers")

SUBSCRIPTION = "product<-user"
"""The checkpoint name of product's subscription to the user log (:mod:`._delist`)."""

BUILT = f"{SUBSCRIPTION}/sellers"
"""The ``checkpoints`` row saying the projection is complete (its revision: where the
rebuild installed it, 0 for a database that had consumed nothing when it got the table)."""

SELLERS_TABLE = "CREATE TABLE sellers (id TEXT PRIMARY KEY) WITHOUT ROWID"
"""The projection's table, in SQLite's dialect."""

POSTGRES_SELLERS_TABLE = 'CREATE TABLE sellers (id TEXT COLLATE "C" PRIMARY KEY)'
"""The projection's table, in PostgreSQL's dialect."""


MARK_BUILT_IF_NEW = (
    "INSERT INTO checkpoints (subscription, revision, update_time_ns)"
    f" SELECT '{BUILT}', 0, 0 WHERE NOT EXISTS"
    f" (SELECT 1 FROM checkpoints WHERE subscription = '{SUBSCRIPTION}')"
)
"""The migration statement marking the (new, empty) projection complete when the
subscription has consumed nothing yet; otherwise it is left to a rebuild."""


_IS_SELLER = "SELECT 1 FROM sellers WHERE id = ?"
_ADD = "INSERT INTO sellers (id) VALUES (?) ON CONFLICT (id) DO NOTHING"
_REMOVE = "DELETE FROM sellers WHERE id = ?"
_CLEAR = "DELETE FROM sellers"
_IS_BUILT = "SELECT 1 FROM checkpoints WHERE subscription = ?"
_UNBUILD = "DELETE FROM checkpoints WHERE subscription = ?"

_CREATED = user_pb2.USER_EVENT_TYPE_CREATED
_UPDATED = user_pb2.USER_EVENT_TYPE_UPDATED
_DELETED = user_pb2.USER_EVENT_TYPE_DELETED

CHECKS = Counter(
    "switchboard_product_seller_checks_total",
    "Seller checks, by what answered: the local projection, or the user service (a miss).",
    ("answered_by",),
)


# --- the projection's effects (inside the subscription's transaction) ----------------------


def project(tx: Transaction, event: user_pb2.UserEvent) -> None:
    """Apply one user event to the projection: CREATED/UPDATED add the id, DELETED removes it.

    Each sets the id's presence outright, so the events applied in revision
    order from any starting set converge on the log's truth.
    """
    if event.type in (_CREATED, _UPDATED):
        tx.conn.execute(_ADD, (event.user.id,))
    elif event.type == _DELETED:
        tx.conn.execute(_REMOVE, (event.user.id,))


def forget_sellers(tx: Transaction) -> None:
    """Empty the projection and mark it incomplete (the next start rebuilds it).

    For a jump in the producer's revisions: the changes in between are
    unknown, so an id may be projected whose deletion was skipped.
    """
    tx.conn.execute(_CLEAR)
    tx.conn.execute(_UNBUILD, (BUILT,))


def is_seller(conn: Connection, seller_id: str) -> bool:
    """True if ``seller_id`` is in the projection (an existing user as of the checkpoint)."""
    return conn.execute(_IS_SELLER, (seller_id,)).fetchone() is not None


def is_built(conn: Connection) -> bool:
    """True if the projection is complete up to the subscription's checkpoint."""
    return conn.execute(_IS_BUILT, (BUILT,)).fetchone() is not None


def _fold(live: set[str], event: user_pb2.UserEvent) -> None:
    """:func:`project` on an in-memory set (the rebuild)."""
    if event.type in (_CREATED, _UPDATED):
        live.add(event.user.id)
    elif event.type == _DELETED:
        live.discard(event.user.id)


def _replace_projection(
    tx: Transaction, subscription: str, live: Iterable[str], folded: int
) -> bool:
    """Replace the projection by ``live`` (the log folded up to revision ``folded``) and mark
    it complete, unless ``subscription`` has applied events past ``folded``; True if done."""
    if read_checkpoint(tx.conn, subscription) > folded:
        return False
    tx.conn.execute(_CLEAR)
    for seller_id in live:
        tx.conn.execute(_ADD, (seller_id,))
    save_checkpoint(tx.conn, BUILT, folded, tx.now_ns)
    return True


# --- the seller check -------------------------------------------------------------------------


class ProjectedSellers:
    """:class:`SellerDirectory`: the projection first, ``fallback`` (GetUser) on a miss.

    Example: ``ProjectedSellers(store.db, UserServiceSellers(users))``.
    """

    def __init__(self, db: Backend, fallback: SellerDirectory) -> None:
        self._db = db
        self._fallback = fallback
        self._local, self._remote = CHECKS.labels("projection"), CHECKS.labels("user_service")

    async def exists(self, seller_id: str) -> bool:
        if await self._db.read(lambda conn: is_seller(conn, seller_id)):
            self._local.inc()
            return True
        self._remote.inc()
        return await self._fallback.exists(seller_id)


# --- the rebuild ------------------------------------------------------------------------------

UserLog = Callable[[], AsyncGenerator[user_pb2.UserEvent, None]]
"""The user service's change log from its start, then live (a WatchUsers from revision 0)."""


class SellerRebuild:
    """Rebuilds an incomplete projection in the background (a :class:`Lifecycle` hook).

    Does nothing when the projection is complete. Otherwise it reads the user
    log from the start until the projection is installed, retrying with a
    jittered, growing delay while the user service cannot be reached; serving
    never waits on it. :attr:`installed_at` is the revision it installed at.
    """

    def __init__(
        self,
        db: Backend,
        subscription: str,
        user_log: UserLog,
        *,
        backoff_s: float = 0.05,
        backoff_cap_s: float = 2.0,
    ) -> None:
        self.installed_at: int | None = None
        self._db = db
        self._subscription = subscription
        self._log = user_log
        self._backoff = (backoff_s, backoff_cap_s)
        self._task: asyncio.Task[None] | None = None

    async def started(self, port: int) -> None:
        """Start rebuilding if the projection is incomplete (the server is SERVING)."""
        del port
        if not await self._db.read(is_built):
            self._task = asyncio.create_task(self.run(), name="rebuild the sellers projection")

    async def stopping(self) -> None:
        """Stop; an install either committed or never happened."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Rebuild until installed, backing off between failed attempts."""
        log.info("the sellers projection is incomplete: rebuilding it from the user log")
        delay = self._backoff[0]
        while True:
            try:
                if await self._attempt():
                    log.info("sellers projection rebuilt at revision %s", self.installed_at)
                    return
            except Exception as err:  # noqa: BLE001 - any failure: back off, read the log again
                log.warning("rebuilding the sellers projection: %s; retrying", err)
            await asyncio.sleep(random.uniform(0, delay))  # full jitter
            delay = min(self._backoff[1], delay * 2)

    async def _attempt(self) -> bool:
        """Read the log from the start; install once it covers the checkpoint. True if done."""
        live: set[str] = set()
        folded = 0
        target = await self._db.read(lambda conn: read_checkpoint(conn, self._subscription))
        if target == 0:
            return await self._install(live, folded)
        async with contextlib.aclosing(self._log()) as events:
            async for event in events:
                _fold(live, event)
                folded = event.revision
                if folded >= target:
                    if await self._install(live, folded):
                        return True
                    target = await self._db.read(
                        lambda conn: read_checkpoint(conn, self._subscription)
                    )
        return False  # the stream ended (the user service stopping): read it again

    async def _install(self, live: set[str], folded: int) -> bool:
        done = await self._db.write(
            lambda tx: _replace_projection(tx, self._subscription, live, folded)
        )
        if done:
            self.installed_at = folded
        return done
