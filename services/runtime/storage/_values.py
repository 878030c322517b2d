"""Server-assigned ids, etags and timestamps.

Ids are 32 lower-case hex characters: 48 bits of Unix milliseconds then 80
random bits (the layout of UUIDv7 / ULID). They sort roughly by creation
time, which makes "List by id" read like "oldest first" and keeps inserts
near the end of the primary-key B-tree; the random part makes them
unguessable and unique across processes sharing a file.

An etag is a short digest of the resource id and the revision of its last
change, so it changes on every update and says nothing about the log.

Times are stored as integer nanoseconds since the Unix epoch (exact, and
sortable in SQL); :func:`timestamp` turns them into ``google.protobuf.Timestamp``.

Example::

    timestamp(1_700_000_000_000_000_000).seconds == 1_700_000_000
    new_id()               # '018f3a6c2b1e9d0c4f7a1b2c3d4e5f60'
    make_etag("ab12", 7)   # '3f1c9a0e5b7d2c48', the same for the same (id, revision)
    check_etag("book", "ab12", request.etag, current.etag)   # Aborted if stale
"""

from __future__ import annotations

import hashlib
import secrets
import time

from google.protobuf.timestamp_pb2 import Timestamp

from services.runtime.errors import Aborted

__all__ = ["check_etag", "make_etag", "new_id", "timestamp"]


def new_id() -> str:
    """A fresh time-ordered random id (32 hex characters)."""
    millis = time.time_ns() // 1_000_000
    return f"{millis & 0xFFFF_FFFF_FFFF:012x}{secrets.token_hex(10)}"


def make_etag(resource_id: str, revision: int) -> str:
    """The etag of ``resource_id`` as of ``revision`` (16 hex characters)."""
    digest = hashlib.blake2b(f"{resource_id}@{revision}".encode(), digest_size=8)
    return digest.hexdigest()


def check_etag(noun: str, resource_id: str, etag: str, current: str) -> None:
    """Aborted (ETAG_MISMATCH) if ``etag`` is given and is not the ``current`` one.

    Example: ``check_etag("book", book.id, request.etag, book.etag)``.
    """
    if etag and etag != current:
        raise Aborted(
            f"{noun} {resource_id!r} changed since etag {etag!r}: read it again and retry",
            reason="ETAG_MISMATCH",
        )


def timestamp(nanos: int) -> Timestamp:
    """A Timestamp for ``nanos`` nanoseconds since the Unix epoch."""
    value = Timestamp()
    value.FromNanoseconds(nanos)
    return value
