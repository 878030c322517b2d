"""Page sizes and page tokens: opaque, tamper-proof, bound to their query."""

from __future__ import annotations

import base64

import pytest

from services.runtime.errors import InvalidArgument
from services.runtime.paging import MAX_TOKEN_LENGTH, PageTokens, page_size

SECRET = b"k" * 32
ID = "0190ab12cd34ef560123456789abcdef"


def test_page_size_default_cap_and_negative() -> None:
    assert page_size(0) == 50
    assert page_size(7) == 7
    assert page_size(1000) == 1000
    assert page_size(5000) == 1000
    with pytest.raises(InvalidArgument) as caught:
        page_size(-1)
    assert caught.value.violations[0].field == "page_size"


def test_token_round_trip() -> None:
    tokens = PageTokens(SECRET)
    token = tokens.issue(ID, "products", "seller-1")
    assert tokens.verify(token, "products", "seller-1") == ID
    assert ID not in token  # opaque to a casual reader, at least


def test_empty_token_is_the_first_page() -> None:
    assert PageTokens(SECRET).verify("", "users") is None


def _assert_rejected(token: str, *query: str, secret: bytes = SECRET) -> None:
    with pytest.raises(InvalidArgument) as caught:
        PageTokens(secret).verify(token, *query)
    assert [v.field for v in caught.value.violations] == ["page_token"]
    assert caught.value.reason == "INVALID_PAGE_TOKEN"


def test_token_of_another_query_is_rejected() -> None:
    token = PageTokens(SECRET).issue(ID, "products", "seller-1")
    _assert_rejected(token, "products", "seller-2")
    _assert_rejected(token, "products", "")
    _assert_rejected(token, "users")


def test_query_parts_cannot_be_shifted() -> None:
    token = PageTokens(SECRET).issue(ID, "ab", "c")
    _assert_rejected(token, "a", "bc")


def test_forged_token_is_rejected() -> None:
    raw = bytearray(base64.urlsafe_b64decode(PageTokens(SECRET).issue(ID, "users") + "=="))
    raw[5] ^= 1  # point the token at another id
    forged = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    _assert_rejected(forged, "users")


def test_token_of_another_secret_is_rejected() -> None:
    token = PageTokens(b"o" * 32).issue(ID, "users")
    _assert_rejected(token, "users")


@pytest.mark.parametrize("token", ["!!!", "abc", "AQ", "x" * (MAX_TOKEN_LENGTH + 1), "é"])
def test_malformed_token_is_rejected(token: str) -> None:
    _assert_rejected(token, "users")


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        PageTokens(b"short")
