"""Helpers every test package shares."""

from __future__ import annotations

import os
import shutil
from collections.abc import Awaitable
from typing import Any

import grpc.aio
import pytest

from harness import TIMINGS
from services.runtime import SwitchboardError, from_rpc_error

__all__ = ["ci", "failure", "require_tools", "write_timings"]


async def failure(call: Awaitable[Any]) -> SwitchboardError:
    """The typed error a call fails with (AssertionError if it succeeds).

    Example: ``assert isinstance(await failure(stub.GetUser(request)), NotFound)``.
    """
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return from_rpc_error(err)
    raise AssertionError("the call succeeded")


def require_tools(*tools: str, why: str) -> None:
    """Skip when a toolchain is missing, except where a skip would hide a failure.

    With ``CI=true`` a missing tool fails the test instead: CI must run everything.

    Example: ``require_tools("go", why="builds interop/go")``.
    """
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not missing:
        return
    message = f"{', '.join(missing)} not found on PATH ({why})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true, so a missing toolchain is a failure, not a skip")
    pytest.skip(message)


def write_timings(reporter: pytest.TerminalReporter, package: str) -> None:
    """Print this package's ``harness.TIMINGS`` in the terminal summary (a pytest hook helper)."""
    mine = {label: s for label, s in TIMINGS.items() if label.startswith(f"{package}: ")}
    if mine:
        reporter.section(f"{package} timings", sep="-")
        for label, seconds in mine.items():
            reporter.write_line(f"{label}: {seconds:.1f} s")


def ci() -> bool:
    """True on CI, where nothing may skip."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}
