"""The console tests' harness: real processes, and headless Chromium driven by Playwright.

:func:`start_stack` starts a registry (HTTP side port on a free port), one
user and one product instance through ``harness.Launcher``.

Playwright's own browser download does not work here (and is never needed):
``make tools-chromium`` installs Debian's pinned ``chromium``, and
:func:`browser_page` launches it with a fresh profile. Every console message
of type ``error`` and every uncaught page error is collected in ``errors``.

Example::

    async with browser_page(tmp_path) as (page, errors):
        await page.goto("http://127.0.0.1:51051/")
        assert errors == []
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Dialog, Page, async_playwright

from harness import REPO, Launcher, Process
from tests.reliability._support.waits import eventually

__all__ = [
    "ARTIFACTS",
    "CHROMIUM",
    "browser_page",
    "instance_id",
    "registered_id",
    "require_chromium",
    "start_stack",
]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "var" / "console-artifacts"
"""Screenshots the tests save (``/var/`` is gitignored)."""

_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_REGISTERED = re.compile(r"registered (\S+)/(\S+) at ")


def require_chromium() -> None:
    """Fail (CI) or skip (elsewhere) when Debian's chromium is missing: `make tools-chromium`."""
    if Path(CHROMIUM).exists() or shutil.which("chromium"):
        return
    message = f"{CHROMIUM} not found: run `make tools-chromium` (Debian's pinned chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true, so a missing browser is a failure, not a skip")
    pytest.skip(message)


@contextlib.asynccontextmanager
async def browser_page(
    profile: Path, width: int = 1280, height: int = 900
) -> AsyncIterator[tuple[Page, list[str]]]:
    """A page in a fresh headless Chromium profile, and the list its errors go to."""
    require_chromium()
    errors: list[str] = []
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=_ARGS,
            viewport={"width": width, "height": height},
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            page.on(
                "console",
                lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None,
            )
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))

            async def on_dialog(dialog: Dialog) -> None:  # an XSS would show up here
                errors.append(f"dialog opened: {dialog.message}")
                await dialog.dismiss()

            page.on("dialog", on_dialog)
            yield page, errors
        finally:
            await context.close()


def instance_id(proc: Process) -> str:
    """The instance id a service process registered under (from its agent's log line)."""
    found = _REGISTERED.findall(proc.log())
    assert found, f"{proc.module} did not register:\n{proc.log()[-2000:]}"
    return str(found[-1][1])


async def registered_id(proc: Process, timeout_s: float = 10.0) -> str:
    """The instance id once the process's agent has registered (bounded wait)."""
    await eventually(lambda: _REGISTERED.search(proc.log()) is not None, timeout_s, "registered")
    return instance_id(proc)


async def start_stack(launch: Launcher, data: Path, *registry_args: str) -> list[Process]:
    """A registry (its HTTP side port on a free port), one user and one product instance.

    ``registry_args`` go to the registry; with ``--token T`` the services get the token too.
    Returns ``[registry, user, product]`` once both services have registered.
    """
    registry = await launch.start("registry", "--http-listen", "127.0.0.1:0", *registry_args)
    token = ["--registry-token", registry_args[-1]] if "--token" in registry_args else []
    common = ["--registry", registry.address, "--http-listen", "off", *token]
    user = await launch.start("services.user", "--data-dir", str(data / "u"), *common)
    product = await launch.start("services.product", "--data-dir", str(data / "p"), *common)
    for proc in (user, product):
        await registered_id(proc)
    return [registry, user, product]
