"""Helpers every test package shares."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable
from typing import Any

import grpc.aio
import pytest

from harness import TIMINGS
from services.runtime import SwitchboardError, from_rpc_error

__all__ = ["LoopLag", "ci", "failure", "require_tools", "write_timings"]


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


class LoopLag:
    """Measures how late the event loop runs timers while a block runs (CPU starvation).

    Timing assertions add ``worst`` to their tolerance: a loaded machine delays
    every wake-up, which says nothing about the code under test.

    Example::

        async with LoopLag() as lag:
            await call()
        assert elapsed <= 0.3 + 0.05 + lag.worst
    """

    def __init__(self, tick_s: float = 0.005) -> None:
        self.worst = 0.0
        self._tick = tick_s
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(100_000):  # bounded; cancelled long before
            start = loop.time()
            await asyncio.sleep(self._tick)
            self.worst = max(self.worst, loop.time() - start - self._tick)
