"""The SQLite user store: event sourcing (replay == tables) and schema migrations."""

from __future__ import annotations

import random
from pathlib import Path

from services.runtime.errors import SwitchboardError
from services.runtime.storage import connect, migrate, schema_version
from services.user import DATABASE_FILE, MIGRATIONS, UserStore, replay
from switchboard.user.v1 import user_pb2
from switchboard.user.v1 import user_service_pb2 as pb
from tests.storage._backends import REFUSED, execute, log, sqlite_conn


async def _random_history(store: UserStore, steps: int, seed: int) -> None:
    """Creates, updates (email or name, with or without etag) and deletes, some of them failing."""
    rng = random.Random(seed)
    ids: list[str] = []
    for step in range(steps):
        action = rng.choice(["create", "create", "update", "delete"]) if ids else "create"
        try:
            if action == "create":
                email = f"u{rng.randrange(40)}@example.com"  # collisions: some ALREADY_EXISTS
                user = user_pb2.User(email=email, display_name=f"n{step}")
                ids.append((await store.create(user, "", None, pb.CreateUserResponse)).user.id)
            elif action == "update":
                change = user_pb2.User(id=rng.choice(ids), email=f"v{step}@example.com",
                                       display_name=f"m{step}")  # fmt: skip
                paths = frozenset(rng.sample(["email", "display_name"], 1))
                await store.update(change, paths, None, pb.UpdateUserResponse)
            else:
                await store.delete(
                    ids.pop(rng.randrange(len(ids))), "", None, pb.DeleteUserResponse
                )
        except SwitchboardError:
            pass  # a refused change must leave no event behind


async def _table(store: UserStore) -> dict[str, user_pb2.User]:
    page = await store.list(None, 1000)
    assert not page.more
    return {user.id: user for user in page.items}


async def test_replaying_the_log_rebuilds_the_table(store: UserStore) -> None:
    await _random_history(store, steps=300, seed=7)
    entries = await log(store)
    events = [user_pb2.UserEvent.FromString(entry.payload) for entry in entries]
    assert [event.revision for event in events] == [entry.revision for entry in entries]
    assert replay(events) == await _table(store)
    assert len(await _table(store)) > 5  # the history left something to compare


async def test_replaying_a_prefix_gives_the_state_at_that_revision(store: UserStore) -> None:
    created = await store.create(
        user_pb2.User(email="a@x.io", display_name="A"), "", None, pb.CreateUserResponse
    )
    first = created.user
    change = user_pb2.User(id=first.id, display_name="B")
    await store.update(change, frozenset({"display_name"}), None, pb.UpdateUserResponse)
    events = [user_pb2.UserEvent.FromString(e.payload) for e in await log(store)]
    assert replay(events[:1]) == {first.id: first}
    assert replay(events)[first.id].display_name == "B"


def test_a_database_at_the_previous_version_is_migrated_on_open(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    old = connect(data_dir / DATABASE_FILE)
    migrate(old, MIGRATIONS[:-1])
    old.execute(
        "INSERT INTO users (id, email, email_key, display_name, create_time_ns, update_time_ns,"
        " revision) VALUES ('u1', 'A@x.io', 'a@x.io', 'Old', 1, 1, 0)"
    )
    old.close()
    store = UserStore.open(data_dir)
    try:
        conn = sqlite_conn(store)
        assert schema_version(conn) == MIGRATIONS[-1].version
        index = "SELECT name FROM sqlite_master WHERE type = 'index' AND name = ?"
        assert conn.execute(index, ("events_by_resource",)).fetchone() is not None
        row = conn.execute("SELECT email, display_name FROM users").fetchall()
        assert row == [("A@x.io", "Old")]
    finally:
        store.close()


async def test_the_database_enforces_unique_emails_itself(store: UserStore) -> None:
    insert = (
        "INSERT INTO users (id, email, email_key, display_name, create_time_ns, update_time_ns,"
        " revision) VALUES (?, ?, ?, 'N', 1, 1, 1)"
    )
    await execute(store, insert, ("u1", "a@x.io", "a@x.io"))
    try:
        await execute(store, insert, ("u2", "A@x.io", "a@x.io"))
    except REFUSED:
        return
    raise AssertionError("a second user with the same email key was stored")
