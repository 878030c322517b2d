"""Regenerate the README's console screenshot: ``make console-screenshot`` (docs/console.png).

Starts a registry, user and product on free ports, adds a second user
instance and SIGKILLs it (so the timeline shows ADDED and EXPIRED), then saves
the page as headless Chromium draws it.

Example: ``python -m tests.console.screenshot docs/console.png``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from playwright.async_api import expect

from harness import Launcher
from tests.console._support import browser_page, registered_id, start_stack
from tests.observability._support import http_address


async def screenshot(out: Path) -> None:
    """Start the platform, open the console, wait for the expiry, save ``out``."""
    with tempfile.TemporaryDirectory(prefix="console-shot-") as tmp:
        work = Path(tmp)
        async with Launcher(work) as launch:
            registry, _user, _product = await start_stack(launch, work)
            extra = await launch.start(
                "services.user",
                *("--data-dir", str(work / "u2"), "--registry", registry.address),
                *("--http-listen", "off", "--registry-ttl-s", "2"),
                *("--instance-metadata", "zone=b,canary=true"),
            )
            extra_id = await registered_id(extra)
            async with browser_page(work / "profile", width=1200, height=760) as (page, errors):
                await page.goto(f"http://{http_address(registry)}/")
                await expect(page.locator(f'tr[data-instance="{extra_id}"]')).to_have_count(2)
                extra.kill()
                expired = page.locator(
                    f'#timeline tr[data-type="EXPIRED"][data-instance="{extra_id}"]'
                )
                await expect(expired).to_be_visible(timeout=5_000)
                await expect(page.locator("td.health-SERVING")).to_have_count(2, timeout=5_000)
                out.parent.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(out), full_page=True)
                assert errors == [], errors
    print(f"wrote {out}")


if __name__ == "__main__":
    asyncio.run(screenshot(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/console.png")))
