"""Fixtures: the pinned grpcurl (``make tools-grpcurl``) and a platform started as ``make run``."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import REPO, TIMINGS, Platform, running_platform
from tests._support import require_tools, write_timings

TOOLS_BIN = REPO / ".tools" / "bin"
GRPCURL = TOOLS_BIN / "grpcurl"
INSTALL_TIMEOUT_S = 300.0  # a cold `go install` of grpcurl; a no-op once installed


@pytest.fixture(scope="session")
def grpcurl() -> Path:
    """The pinned grpcurl, installed by ``make tools-grpcurl`` if it is not there yet."""
    require_tools("make", why="make tools-grpcurl")
    if not GRPCURL.exists():
        require_tools("go", why="make tools-grpcurl runs go install")
    started = time.monotonic()
    subprocess.run(
        ["make", "--no-print-directory", "tools-grpcurl"],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    TIMINGS["walkthrough: make tools-grpcurl"] = time.monotonic() - started
    return GRPCURL


@pytest.fixture(scope="session")
def tools_env(grpcurl: Path) -> dict[str, str]:
    """The environment with ``.tools/bin`` first on PATH, as the README tells people to set."""
    return {**os.environ, "PATH": f"{grpcurl.parent}{os.pathsep}{os.environ.get('PATH', '')}"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One platform for a test module (fresh ports and data dir)."""
    with running_platform(tmp_path_factory.mktemp("platform")) as running:
        yield running


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report how long the tool install took."""
    write_timings(terminalreporter, "walkthrough")
