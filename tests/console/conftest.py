"""Fixtures: real processes (killed at teardown) for the console's browser tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from harness import Launcher


@pytest.fixture
async def launcher(tmp_path: Path) -> AsyncIterator[Launcher]:
    """Start real processes (``await launcher.start("registry")``); all killed at the end."""
    async with Launcher(tmp_path) as launch:
        yield launch
