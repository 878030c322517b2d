"""Fixtures: a process launcher whose every process group is killed at teardown."""

from __future__ import annotations

from tests.reliability.conftest import launcher

__all__ = ["launcher"]
