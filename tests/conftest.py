"""Fixtures every test package may use: the harness's process launcher, async and sync.

Each is a thin wrapper over :class:`harness.Launcher`: processes log into the
test's ``tmp_path`` and every one still running is killed (its whole process
group) and reaped at teardown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from harness import Launcher


@pytest.fixture
async def launcher(tmp_path: Path) -> AsyncIterator[Launcher]:
    """Start real processes from async tests (``await launcher.start("registry")``)."""
    async with Launcher(tmp_path) as launch:
        yield launch


@pytest.fixture
def sync_launcher(tmp_path: Path) -> Iterator[Launcher]:
    """Start real processes from sync tests (``launcher.start_sync("registry")``)."""
    with Launcher(tmp_path) as launch:
        yield launch
