"""Idempotent mutations: the first response to a (method, request_id) is kept and replayed.

The ``requests`` table is written in the same transaction as the change it
acknowledges, so either both the change and its stored response exist or
neither does: a retry after a crash either finds the response or redoes the
work, never both. Only successful responses are stored (AIP-155: the retry
of a failed call is evaluated again, since the state may have changed).

Reusing a request_id with a *different* request body is answered with
INVALID_ARGUMENT (a violation on ``request_id``) rather than the first result
(the "return the first result" reading of AIP-155): silently answering a
different question with an old answer hides a client bug, e.g. a client that
reuses one key for two different products would believe both were created.
Stripe's idempotency keys behave the same way. The body is compared by a
SHA-256 of its deterministic serialization.

Stored responses are kept as long as the database (no expiry yet).

Example::

    key = RequestKey.of("CreateUser", request.request_id, request)
    with db.write() as tx:
        stored = find_response(tx.conn, key)
        if stored is not None:
            return CreateUserResponse.FromString(stored)
        ...                                        # the change itself
        save_response(tx.conn, key, response.SerializeToString())
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from google.protobuf.message import Message

from services.runtime.errors import InvalidArgument
from services.runtime.metrics import STORAGE_REPLAYS
from services.runtime.validation import MAX_IDEMPOTENCY_KEY_LENGTH

if TYPE_CHECKING:
    from services.runtime.storage._backend import Connection

__all__ = ["MAX_IDEMPOTENCY_KEY_LENGTH", "RequestKey", "find_response", "save_response"]

REQUESTS_TABLE = (
    "CREATE TABLE requests ("
    " method TEXT NOT NULL,"
    " request_id TEXT NOT NULL,"
    " fingerprint BLOB NOT NULL,"
    " response BLOB NOT NULL,"
    " create_time_ns INTEGER NOT NULL,"
    " PRIMARY KEY (method, request_id)) WITHOUT ROWID"
)


@dataclass(frozen=True)
class RequestKey:
    """Which call a stored response answers, and a digest of the request it answered."""

    method: str
    request_id: str
    fingerprint: bytes

    @classmethod
    def of(cls, method: str, request_id: str, request: Message) -> RequestKey | None:
        """The key for ``request``, or None when it carries no request_id (not idempotent).

        Example: ``RequestKey.of("ReserveStock", "r-1", request)``.
        """
        if not request_id:
            return None
        digest = hashlib.sha256(request.SerializeToString(deterministic=True)).digest()
        return cls(method, request_id, digest)


def find_response(conn: Connection, key: RequestKey | None) -> bytes | None:
    """The stored response for ``key``, None if there is none (or no key).

    Raises InvalidArgument if the request_id was used for a different request.
    """
    if key is None:
        return None
    row = conn.execute(
        "SELECT fingerprint, response FROM requests WHERE method = ? AND request_id = ?",
        (key.method, key.request_id),
    ).fetchone()
    if row is None:
        return None
    if bytes(row[0]) != key.fingerprint:
        raise InvalidArgument(
            "request_id was already used for a different request",
            violations=[("request_id", "already used for a different request; use a new one")],
            reason="REQUEST_ID_REUSED",
        )
    STORAGE_REPLAYS.inc()
    return bytes(row[1])


def save_response(conn: Connection, key: RequestKey | None, response: bytes, now_ns: int) -> None:
    """Store the response to ``key`` (no-op without a key); call inside the change's transaction."""
    if key is None:
        return
    conn.execute(
        "INSERT INTO requests (method, request_id, fingerprint, response, create_time_ns)"
        " VALUES (?, ?, ?, ?, ?)",
        (key.method, key.request_id, key.fingerprint, response, now_ns),
    )
