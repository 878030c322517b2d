"""Versioned migrations: applied in order, once, atomically; a newer database is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from services.runtime.storage import Migration, MigrationError, connect, migrate, schema_version

V1 = Migration(1, "things", ("CREATE TABLE things (id TEXT PRIMARY KEY, name TEXT NOT NULL)",))
V2 = Migration(2, "things get a size", ("ALTER TABLE things ADD COLUMN size INTEGER",))
V3 = Migration(
    3,
    "backfill size",
    (
        "UPDATE things SET size = length(name) WHERE size IS NULL",
        "CREATE INDEX ts ON things (size)",
    ),
)


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute("SELECT * FROM pragma_table_info(?)", (table,))]


def test_new_database_gets_every_migration(tmp_path: Path) -> None:
    conn = connect(tmp_path / "a.db")
    assert schema_version(conn) == 0
    assert migrate(conn, (V1, V2, V3)) == 3
    assert schema_version(conn) == 3
    assert _columns(conn, "things") == ["id", "name", "size"]
    conn.close()


def test_database_at_previous_version_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    conn = connect(tmp_path / "a.db")
    migrate(conn, (V1, V2))
    conn.execute("INSERT INTO things (id, name) VALUES (?, ?)", ("t1", "four"))
    assert migrate(conn, (V1, V2, V3)) == 3
    assert conn.execute("SELECT id, name, size FROM things").fetchall() == [("t1", "four", 4)]
    conn.close()


def test_migrating_twice_changes_nothing(tmp_path: Path) -> None:
    conn = connect(tmp_path / "a.db")
    migrate(conn, (V1, V2, V3))
    assert migrate(conn, (V1, V2, V3)) == 3
    conn.close()


def test_failing_migration_rolls_back_every_step(tmp_path: Path) -> None:
    conn = connect(tmp_path / "a.db")
    migrate(conn, (V1,))
    broken = Migration(3, "broken", ("CREATE TABLE other (x)", "THIS IS NOT SQL"))
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, (V1, V2, broken))
    assert schema_version(conn) == 1
    assert _columns(conn, "things") == ["id", "name"]  # V2 rolled back with the broken step
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'other'").fetchone() is None
    conn.close()


def test_newer_database_is_refused(tmp_path: Path) -> None:
    conn = connect(tmp_path / "a.db")
    migrate(conn, (V1, V2))
    with pytest.raises(MigrationError, match="newer"):
        migrate(conn, (V1,))
    conn.close()


def test_gap_in_versions_is_refused(tmp_path: Path) -> None:
    conn = connect(tmp_path / "a.db")
    with pytest.raises(MigrationError, match="expected 2"):
        migrate(conn, (V1, V3))
    conn.close()
