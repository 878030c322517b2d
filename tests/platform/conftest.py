"""Fixtures: a sync launcher for real processes; prints how long the platform took to come up
(see ``harness.TIMINGS``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import Launcher
from tests._support import write_timings


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    """Start processes from sync tests; every one still running is killed at teardown."""
    with Launcher(tmp_path) as launch:
        yield launch


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report the measured start-up times after the test results."""
    write_timings(terminalreporter, "supervisor")
