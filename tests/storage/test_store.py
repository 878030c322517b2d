"""The shared store base and helpers: idempotent writes, keyset pages, rows, etags, watches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.wrappers_pb2 import Int64Value, StringValue

from services.runtime.errors import Aborted, AlreadyExists, InvalidArgument, NotFound, Unavailable
from services.runtime.storage import (
    CORE_TABLES,
    INLINE_PAGE_LIMIT,
    Database,
    Migration,
    RequestKey,
    Store,
    Transaction,
    check_etag,
    check_id_free,
    commit_change,
    fetch_row,
    in_revision_order,
    watch_stream,
)
from services.runtime.validation import require_id
from tests.storage._backends import log, sqlite_conn

BOUND_S = 3.0
_SELECT_ONE = "SELECT id, label FROM things WHERE id = ?"
_PAGE = "SELECT id, label FROM things WHERE label = ? AND id > ? ORDER BY id LIMIT ?"


class ThingStore(Store):
    """The smallest service store: things with a label."""

    DATABASE_FILE = "things.db"
    MIGRATIONS = (
        Migration(1, "things", (*CORE_TABLES, "CREATE TABLE things (id TEXT PRIMARY KEY, label)")),
    )

    async def add(self, thing_id: str, key: RequestKey | None) -> StringValue:
        return await self.write_once(key, StringValue, lambda tx: _add(tx, thing_id, key))


def _add(tx: Transaction, thing_id: str, key: RequestKey | None) -> StringValue:
    check_id_free(tx.conn, _SELECT_ONE, thing_id, resource_type="Thing", reason="THING_EXISTS")
    tx.conn.execute("INSERT INTO things (id, label) VALUES (?, 'x')", (thing_id,))
    response = StringValue(value=f"{thing_id}@{tx.revision}")
    commit_change(tx, key, thing_id, "ADDED", Int64Value(value=tx.revision), response)
    return response


def _key(request_id: str, thing_id: str) -> RequestKey | None:
    return RequestKey.of("Add", request_id, StringValue(value=thing_id))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ThingStore]:
    things = ThingStore.open(tmp_path)
    yield things
    things.close()


async def test_open_creates_the_named_file(tmp_path: Path, store: ThingStore) -> None:
    assert isinstance(store.db, Database)
    assert store.db.path == tmp_path / "things.db" and store.db.path.exists()


async def test_a_retried_key_gets_the_first_answer_and_changes_nothing(store: ThingStore) -> None:
    first = await store.add("a", _key("r-1", "a"))
    assert await store.add("a", _key("r-1", "a")) == first  # no AlreadyExists: not run again
    assert await store.stored_response(_key("r-1", "a")) == first.SerializeToString()
    assert [e.revision for e in await log(store)] == [1]


async def test_a_failed_change_writes_neither_event_nor_response(store: ThingStore) -> None:
    await store.add("a", None)
    with pytest.raises(AlreadyExists) as taken:
        await store.add("a", _key("r-2", "a"))
    assert taken.value.reason == "THING_EXISTS"
    assert await store.stored_response(_key("r-2", "a")) is None
    assert len(await log(store)) == 1


@pytest.mark.parametrize("size", [2, INLINE_PAGE_LIMIT + 1])  # inline, then the reader thread
async def test_read_page_walks_the_keys_in_order(store: ThingStore, size: int) -> None:
    ids = [f"t{n:03d}" for n in range(2 * size + 1)]
    for thing_id in ids:
        await store.add(thing_id, None)
    seen: list[str] = []
    after: str | None = None
    for _ in range(4):  # 3 pages; bounded
        page, more = await store.read_page(_PAGE, ("x",), after, size, lambda row: str(row[0]))
        seen += page
        after = page[-1]
        if not more:
            break
    assert seen == ids


def test_fetch_row_finds_or_is_not_found(store: ThingStore) -> None:
    conn = sqlite_conn(store)
    conn.execute("INSERT INTO things (id, label) VALUES ('a', 'x')")
    assert tuple(fetch_row(conn, _SELECT_ONE, "a", resource_type="T", reason="R")) == ("a", "x")
    with pytest.raises(NotFound) as missing:
        fetch_row(conn, _SELECT_ONE, "b", resource_type="T", reason="T_NOT_FOUND")
    assert missing.value.reason == "T_NOT_FOUND"


def test_check_etag() -> None:
    check_etag("thing", "a", "", "e1")  # no etag: unconditional
    check_etag("thing", "a", "e1", "e1")
    with pytest.raises(Aborted, match="thing 'a' changed since etag 'e0'") as stale:
        check_etag("thing", "a", "e0", "e1")
    assert stale.value.reason == "ETAG_MISMATCH"


def test_require_id() -> None:
    require_id("id", "a", "GetThing")
    with pytest.raises(InvalidArgument, match="invalid GetThing request") as bad:
        require_id("id", "", "GetThing")
    assert [v.field for v in bad.value.violations] == ["id"]


def test_in_revision_order_refuses_a_step_back() -> None:
    assert [e.revision for e in in_revision_order(map(_Revisioned, (1, 3)))] == [1, 3]
    with pytest.raises(ValueError, match="out of order: 2 after 3"):
        list(in_revision_order(map(_Revisioned, (1, 3, 2))))


class _Revisioned:
    def __init__(self, revision: int) -> None:
        self.revision = revision


async def _events(start_revision: int) -> AsyncIterator[int]:
    for revision in range(start_revision + 1, start_revision + 3):
        yield revision


async def test_watch_stream_streams_then_ends_with_unavailable() -> None:
    seen: list[int] = []
    with pytest.raises(Unavailable) as ended:
        async with asyncio.timeout(BOUND_S):
            async for revision in watch_stream(4, _events):
                seen.append(revision)
    assert seen == [5, 6] and ended.value.reason == "SHUTTING_DOWN"


async def test_watch_stream_refuses_a_negative_start() -> None:
    stream = watch_stream(-1, _events)
    with pytest.raises(InvalidArgument) as bad:
        await anext(stream)
    assert [v.field for v in bad.value.violations] == ["start_revision"]


async def test_store_watch_ends_when_watches_are_ended(store: ThingStore) -> None:
    await store.add("a", None)
    events = store.watch(0, Int64Value)
    async with asyncio.timeout(BOUND_S):
        assert (await anext(events)).value == 1
        store.end_watches()
        rest: list[Any] = [event async for event in events]
    assert rest == []
