"""Prints the figures tests record as ``user_properties`` (the flood p99s) at the end of
the run, so a measured figure that is not asserted is still seen.

The ``launcher`` fixture these tests use comes from ``tests/conftest.py``.
"""

from __future__ import annotations

from _pytest.terminal import TerminalReporter


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    """List every recorded figure of the reliability tests, one line per test."""
    lines = [
        f"{report.nodeid.split('::')[-1]}: "
        + ", ".join(f"{name} {value}" for name, value in report.user_properties)
        for report in terminalreporter.stats.get("passed", [])
        if report.when == "call" and report.user_properties and "reliability" in report.nodeid
    ]
    if lines:
        terminalreporter.section("reliability figures (recorded, not asserted)")
        for line in lines:
            terminalreporter.write_line(line)
