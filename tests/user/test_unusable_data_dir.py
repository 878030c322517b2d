"""A data dir the service cannot use is one line naming the cause and the fix, exit 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import REPO

pytestmark = pytest.mark.e2e


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder another user can enter (pytest's own tmp dirs are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="sb-datadir-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start_user(data_dir: Path, *prefix: str) -> subprocess.CompletedProcess[str]:
    command = [*prefix, sys.executable, "-m", "services.user", "--listen", "127.0.0.1:0"]
    return subprocess.run(
        [*command, "--data-dir", str(data_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        env={k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")},
    )


def test_a_data_dir_that_is_a_file(shared_dir: Path) -> None:
    not_a_dir = shared_dir / "var"
    not_a_dir.write_text("")
    result = start_user(not_a_dir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: cannot open {not_a_dir}: {not_a_dir} is a file, not a directory: "
        "pass --data-dir a directory (it is created when missing)"
    ]


def test_a_read_only_database(shared_dir: Path) -> None:
    """The file is root's and 0644; the service runs as ``nobody`` (as root), or 0444 as us."""
    data = shared_dir / "data"
    made = start_user(data, "timeout", "-s", "INT", "3")  # creates and migrates user.db
    database = data / "user.db"
    assert database.exists(), made.stderr
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:  # root writes anything: run as another user instead
        prefix = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--")
        data.chmod(0o755)
        database.chmod(0o644)
    else:
        database.chmod(0o444)
    result = start_user(data, *prefix)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: cannot open {data}: {database} is read-only:"), lines
    assert "Traceback" not in result.stderr
