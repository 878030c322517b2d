"""List pagination: page sizes and opaque, tamper-proof page tokens (AIP-158).

A page token carries the id of the last item of the page (keyset
pagination: the next page is ``WHERE id > ? ORDER BY id LIMIT ?``, never
OFFSET) and an HMAC-SHA256 over that id *and the query it belongs to*, keyed
by a secret kept in the service's database (so every process sharing the
data dir accepts the tokens of the others, also after a restart).

Rules (each breach is INVALID_ARGUMENT with a violation on ``page_token``):

- The token must be one this service issued: a malformed or edited token
  fails the HMAC check.
- It is bound to its query: the collection (``users`` vs ``products``) and
  every filter (e.g. ``seller_id``). A token of another query is rejected.
- ``page_size`` may change from page to page (AIP-158 allows it), so it is
  not part of the query.
- Tokens do not expire: with keyset pagination an old token still means
  "the items after id X", even if X has been deleted since.

The token is readable base64 (version, last id, tag), not encrypted: it is
opaque by contract, and holds nothing a caller of List could not see anyway.

Example::

    tokens = PageTokens(secret)
    size = page_size(request.page_size)                     # 0 -> 50, 5000 -> 1000
    after = tokens.verify(request.page_token, "products", request.seller_id)
    ...
    next_token = tokens.issue(last_id, "products", request.seller_id)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from services.runtime.errors import InvalidArgument

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "MAX_TOKEN_LENGTH", "PageTokens", "page_size"]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_TOKEN_LENGTH = 512
"""Longer tokens are rejected before any decoding work."""

_VERSION = b"\x01"
_TAG_BYTES = 16


def page_size(requested: int) -> int:
    """The page size to use: 0 means 50, above 1000 means 1000, negative is INVALID_ARGUMENT.

    Example: ``page_size(0) == 50``; ``page_size(5000) == 1000``.
    """
    if requested < 0:
        raise InvalidArgument(
            "page_size must not be negative",
            violations=[("page_size", "must not be negative (0 means the default, 50)")],
        )
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


class PageTokens:
    """Issues and checks page tokens with one secret key.

    Example::

        tokens = PageTokens(b"32 random bytes ...")
        token = tokens.issue("0190ab...", "users")
        tokens.verify(token, "users")       # -> "0190ab..."
        tokens.verify(token, "products")    # InvalidArgument (another query)
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a page token secret needs at least 16 bytes")
        self._secret = secret

    def issue(self, last_id: str, *query: str) -> str:
        """A token for the page that follows the item ``last_id`` of ``query``."""
        body = _VERSION + last_id.encode()
        raw = body + self._tag(body, query)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def verify(self, token: str, *query: str) -> str | None:
        """The last id a token carries; None for an empty token (the first page).

        Raises InvalidArgument if the token is malformed, forged or from another query.
        """
        if not token:
            return None
        raw = self._decode(token)
        body, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
        if not hmac.compare_digest(tag, self._tag(body, query)):
            raise _bad_token("was not issued for this query (forged, edited or another filter)")
        return body[len(_VERSION) :].decode()

    def _tag(self, body: bytes, query: tuple[str, ...]) -> bytes:
        """HMAC-SHA256 over the query parts (length-prefixed, so no two queries collide)."""
        mac = hmac.new(self._secret, digestmod=hashlib.sha256)
        for part in query:
            encoded = part.encode()
            mac.update(len(encoded).to_bytes(4, "big") + encoded)
        mac.update(body)
        return mac.digest()[:_TAG_BYTES]

    @staticmethod
    def _decode(token: str) -> bytes:
        """The raw bytes of a token, or InvalidArgument when it cannot be one of ours."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise _bad_token(f"is longer than {MAX_TOKEN_LENGTH} characters")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise _bad_token("is malformed") from None
        if len(raw) <= len(_VERSION) + _TAG_BYTES or not raw.startswith(_VERSION):
            raise _bad_token("is malformed")
        return raw


def _bad_token(why: str) -> InvalidArgument:
    """The error for an unusable page token."""
    return InvalidArgument(
        f"page_token {why}",
        violations=[("page_token", f"{why}; pass a next_page_token from the same query")],
        reason="INVALID_PAGE_TOKEN",
    )
