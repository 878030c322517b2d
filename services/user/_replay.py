"""Event sourcing: the users a change log describes.

Each event carries the whole user after the change, so replaying is a fold:
CREATED and UPDATED put the user, DELETED removes it. The result must equal
the ``users`` table (a test checks it), which proves the log is complete.

Example::

    users = replay(events)         # {id: User}
"""

from __future__ import annotations

from collections.abc import Iterable

from services.runtime.storage import in_revision_order
from switchboard.user.v1 import user_pb2

__all__ = ["replay"]


def replay(events: Iterable[user_pb2.UserEvent]) -> dict[str, user_pb2.User]:
    """Apply ``events`` (in revision order) to an empty state and return it."""
    users: dict[str, user_pb2.User] = {}
    for event in in_revision_order(events):
        if event.type == user_pb2.USER_EVENT_TYPE_DELETED:
            users.pop(event.user.id, None)
        else:
            users[event.user.id] = event.user
    return users
