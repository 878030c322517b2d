"""Products react to their users' changes: the subscription to the user service's log.

When the user service logs a user's deletion, every product that user sold
on sale is DELISTED (its active reservations released first), in the same
transaction as the subscription's checkpoint (:mod:`services.runtime.events`):
applied exactly once, by whichever product instance gets there first.

The same transaction keeps the projection of existing sellers
(:mod:`services.product._projection`): CREATED and UPDATED add the user's
id, DELETED removes it. A jump in the log's revisions (a compacted log)
empties the projection and marks it for a rebuild, since a deletion may have
been skipped; every seller check then asks the user service until then.

A seller's other changes need nothing here: products keep only the seller's
id, no copy of their name.

Example::

    subscriber = Subscriber(SELLERS, store.db, client)
"""

from __future__ import annotations

from typing import Any

from services.product._projection import SUBSCRIPTION, forget_sellers, project
from services.product._store import delist_seller
from services.runtime.events import Subscription
from services.runtime.storage import Transaction, read_checkpoint
from switchboard.user.v1 import user_pb2, user_service_pb2

__all__ = ["SELLERS", "on_user_event"]

_ = user_service_pb2  # loads the WatchUsers method into the descriptor pool


def on_user_event(tx: Transaction, event: Any) -> None:
    """Keep the sellers projection; delist the products of a deleted user."""
    if event.revision > read_checkpoint(tx.conn, SUBSCRIPTION) + 1:  # the log jumped
        forget_sellers(tx)
    project(tx, event)
    if event.type == user_pb2.USER_EVENT_TYPE_DELETED:
        delist_seller(tx, event.user.id)


SELLERS = Subscription(
    name=SUBSCRIPTION,
    service="user",
    method="/switchboard.user.v1.UserService/WatchUsers",
    handler=on_user_event,
)
"""The product service's subscription to the user service's change log."""
