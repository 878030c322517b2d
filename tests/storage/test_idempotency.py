"""Idempotency keys: the first response is kept; the same key for another request is refused."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.runtime.errors import InvalidArgument
from services.runtime.storage import (
    REQUESTS_TABLE,
    RequestKey,
    connect,
    find_response,
    save_response,
)
from switchboard.user.v1 import user_pb2, user_service_pb2


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = connect(tmp_path / "i.db")
    connection.execute(REQUESTS_TABLE)
    yield connection
    connection.close()


def _request(email: str) -> user_service_pb2.CreateUserRequest:
    return user_service_pb2.CreateUserRequest(
        user=user_pb2.User(email=email, display_name="A"), request_id="r-1"
    )


def test_no_request_id_means_no_key() -> None:
    assert RequestKey.of("CreateUser", "", _request("a@b.co")) is None


def test_stored_response_is_found_for_the_same_request(conn: sqlite3.Connection) -> None:
    key = RequestKey.of("CreateUser", "r-1", _request("a@b.co"))
    assert find_response(conn, key) is None
    save_response(conn, key, b"response", 1)
    again = RequestKey.of("CreateUser", "r-1", _request("a@b.co"))
    assert find_response(conn, again) == b"response"


def test_same_key_for_another_method_is_independent(conn: sqlite3.Connection) -> None:
    save_response(conn, RequestKey.of("CreateUser", "r-1", _request("a@b.co")), b"x", 1)
    assert find_response(conn, RequestKey.of("UpdateUser", "r-1", _request("a@b.co"))) is None


def test_same_key_for_a_different_request_is_invalid(conn: sqlite3.Connection) -> None:
    save_response(conn, RequestKey.of("CreateUser", "r-1", _request("a@b.co")), b"x", 1)
    with pytest.raises(InvalidArgument) as caught:
        find_response(conn, RequestKey.of("CreateUser", "r-1", _request("other@b.co")))
    assert caught.value.violations[0].field == "request_id"
    assert caught.value.reason == "REQUEST_ID_REUSED"
