"""Prints how long the platform took to come up (see ``harness.TIMINGS``)."""

from __future__ import annotations

import pytest

from tests._support import write_timings


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report the measured start-up times after the test results."""
    write_timings(terminalreporter, "supervisor")
