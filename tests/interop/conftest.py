"""Fixtures: the Go/TS/Java clients built once per session, and a platform to call.

``make stubs interop`` (generated/{go,ts,java} from protos/, then the clients in
interop/) runs once per session. A language whose toolchain is missing is left
out of the build and its test skips, unless ``CI=true`` (see ``require_tools``).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from harness import REPO, TIMINGS, Platform, running_platform
from tests._support import write_timings
from tests.interop._clients import CLIENTS

BUILD_TIMEOUT_S = 600.0  # a cold build resolves Go modules, npm packages and Maven artifacts


def _targets(languages: list[str]) -> list[str]:
    """``make stubs interop`` when every toolchain is there, else the available languages'."""
    if len(languages) == len(CLIENTS):
        return ["stubs", "interop"]
    return [t for lang in languages for t in (f"stubs-{lang}", f"interop-{lang}")]


@pytest.fixture(scope="session")
def built_languages() -> list[str]:
    """Build the stubs and clients of every language whose toolchain is on PATH."""
    languages = [c.language for c in CLIENTS.values() if all(shutil.which(t) for t in c.tools)]
    if not languages or shutil.which("make") is None:
        return []
    started = time.monotonic()
    result = subprocess.run(
        ["make", "--no-print-directory", *_targets(languages)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    TIMINGS[f"interop: make {' '.join(_targets(languages))}"] = time.monotonic() - started
    if result.returncode != 0:
        tail = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        pytest.fail(f"make {' '.join(_targets(languages))} failed ({result.returncode}):\n{tail}")
    return languages


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The platform as ``make run`` starts it, on free ports."""
    with running_platform(tmp_path_factory.mktemp("platform")) as running:
        yield running


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report how long the build and each client took."""
    write_timings(terminalreporter, "interop")
