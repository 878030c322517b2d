"""Helpers for the observability tests: HTTP addresses of started processes, scraping, polling.

Processes come from :class:`harness.Launcher` (one launcher for every
real-process test and the bench); this module only adds the observability side:
the HTTP address a process's listening line names, scraping and polling.

Example::

    async with Launcher(tmp_path) as launch:
        registry = await launch.start("registry")
        text = await scrape(http_address(registry))
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from harness import Process

__all__ = [
    "eventually",
    "get_json",
    "http_address",
    "reachable",
    "sample",
    "scrape",
]

T = TypeVar("T")


def http_address(proc: Process) -> str:
    """The ``host:port`` of a process's HTTP side port, from its listening line."""
    found = proc.http_address
    assert found, f"{proc.module} printed no HTTP address:\n{proc.log()[-2000:]}"
    return found


# Loopback only: a proxy from the environment must not see these requests.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str) -> bytes:
    with _OPENER.open(url, timeout=5) as answer:
        body: bytes = answer.read()
        return body


async def reachable(url: str) -> bool:
    """True when ``url`` answers 2xx (False while nothing listens there)."""
    try:
        await asyncio.to_thread(_get, url)
    except (urllib.error.URLError, ConnectionError):
        return False
    return True


async def get_json(url: str) -> Any:
    """GET ``url`` (off the event loop) and parse its JSON body."""
    return json.loads(await asyncio.to_thread(_get, url))


async def scrape(address: str) -> str:
    """The Prometheus text exposition of the process at ``address``."""
    return (await asyncio.to_thread(_get, f"http://{address}/metrics")).decode()


async def eventually(
    probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], timeout_s: float, what: str
) -> T:
    """Poll ``probe()`` until ``check`` holds (bounded by ``timeout_s``); the last value.

    Polling is the only way to wait on a scraper or an SD refresh: they send no event.
    """
    deadline = time.monotonic() + timeout_s
    value = await probe()
    while not check(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s; last value {value!r}")
        await asyncio.sleep(0.1)
        value = await probe()
    return value


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name{labels}`` in an exposition (labels must all match)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{key}="{val}"' in head for key, val in labels.items()):
            return float(value)
    return None
