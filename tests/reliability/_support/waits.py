"""Bounded waiting and small measurements shared by the reliability tests.

Example::

    elapsed = await eventually(lambda: len(conn.addresses) == 2, 5.0, "both instances known")
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

__all__ = ["close_stream", "eventually", "percentile"]

Check = Callable[[], bool] | Callable[[], Awaitable[bool]]


async def eventually(check: Check, timeout_s: float, what: str, interval_s: float = 0.02) -> float:
    """Poll ``check`` until it holds; return the seconds it took. Fails after ``timeout_s``.

    For state that has no event to await (a registry entry, a file, a counter).
    Example: ``await eventually(lambda: proc.running is False, 5.0, "process exited")``.
    """
    start = time.monotonic()
    for _ in range(int(timeout_s / interval_s) + 2):
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic() - start
        if time.monotonic() - start > timeout_s:
            break
        await asyncio.sleep(interval_s)
    raise AssertionError(f"not within {timeout_s} s: {what}")


async def close_stream(stream: AsyncIterator[Any]) -> None:
    """Close an async generator stream (its call is cancelled) before it is used up."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The ``fraction`` percentile (nearest rank) of ``samples``.

    Example: ``percentile([1, 2, 3, 4], 0.5) == 2``.
    """
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]
