"""The registry console in a real headless Chromium, against real processes.

The registry, user and product run as separate processes on free loopback
ports; the page is opened once and never reloaded while instances come and go.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from harness import Launcher
from tests.console._support import (
    ARTIFACTS,
    browser_page,
    instance_id,
    registered_id,
    start_stack,
)
from tests.observability._support import get_json, http_address
from tests.reliability._support.waits import eventually

pytestmark = pytest.mark.e2e

XSS = "<script>alert(1)</script>"
SHORT_TTL_S = 2.0


async def _eventually_json(url: str, check: Callable[[Any], bool]) -> Any:
    """GET ``url`` until its JSON passes ``check`` (bounded)."""
    answers: list[Any] = []

    async def probe() -> bool:
        answers.append(await get_json(url))
        return check(answers[-1])

    await eventually(probe, 5.0, f"{url} answers as expected")
    return answers[-1]


def _only_unauthorized(errors: list[str]) -> bool:
    """The browser logs each 401 answer as a console error: the expected ones only."""
    return all("401" in error for error in errors)


async def test_live_page_follows_instances_as_they_come_and_expire(
    launcher: Launcher, tmp_path: Path
) -> None:
    registry, user, product = await start_stack(launcher, tmp_path)
    url = f"http://{http_address(registry)}/"
    async with browser_page(tmp_path / "profile") as (page, errors):
        await page.goto(url)
        for proc, name in ((user, "user"), (product, "product")):
            row = page.locator(f'#service-{name} tbody tr[data-instance="{instance_id(proc)}"]')
            await expect(row).to_be_visible(timeout=5_000)
        await expect(page.locator('#services tr[data-service="user"] td')).to_have_text("1")

        # A second user instance appears without a reload (its metadata is an XSS attempt).
        second = await launcher.start(
            "services.user",
            *("--data-dir", str(tmp_path / "u2"), "--registry", registry.address),
            *("--http-listen", "off", "--registry-ttl-s", str(SHORT_TTL_S)),
            *("--instance-metadata", f"note={XSS}"),
        )
        second_id = await registered_id(second)
        second_row = page.locator(f'#service-user tbody tr[data-instance="{second_id}"]')
        await expect(second_row).to_be_visible(timeout=2_000)
        await expect(page.locator('#services tr[data-service="user"] td')).to_have_text("2")
        lease_left = second_row.locator("td[data-expires]")  # renewed every TTL/3
        await expect(lease_left).to_have_text(re.compile(r"^[0-2] s$"))

        # The metadata value is shown as text, never run as markup.
        await expect(second_row.locator("dd", has_text=XSS)).to_have_text(XSS)
        assert await page.locator("#instances script").count() == 0

        # The filter narrows the list (keyboard: focus the labelled box and type).
        await page.get_by_label("Filter services by name").focus()
        await page.keyboard.type("prod")
        await expect(page.locator("#services tbody tr")).to_have_count(1)
        await expect(page.locator("#instances section:not([hidden])")).to_have_count(1)
        await expect(page.locator("#instances section:not([hidden])")).to_have_attribute(
            "data-service", "product"
        )
        await page.get_by_label("Filter services by name").fill("")
        await expect(page.locator("#services tbody tr")).to_have_count(2)

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "console.png"), full_page=True)

        # SIGKILL: the lease runs out, the timeline says EXPIRED, the row leaves the list.
        second.kill()
        killed = time.monotonic()
        expired = page.locator(f'#timeline tr[data-type="EXPIRED"][data-instance="{second_id}"]')
        await expect(expired).to_be_visible(timeout=(SHORT_TTL_S + 1.0) * 1000)
        assert time.monotonic() - killed <= SHORT_TTL_S + 1.0
        await expect(second_row).to_have_count(0)
        await expect(page.locator('#services tr[data-service="user"] td')).to_have_text("1")

        await page.set_viewport_size({"width": 360, "height": 740})  # a narrow window
        await expect(page.get_by_label("Filter services by name")).to_be_visible()
        await page.screenshot(path=str(ARTIFACTS / "console-narrow.png"), full_page=True)
        assert errors == []


async def test_json_api_answers_scripts(launcher: Launcher, tmp_path: Path) -> None:
    registry, user, _product = await start_stack(launcher, tmp_path)
    base = f"http://{http_address(registry)}"
    assert f"console {base}/" in registry.log()  # the listening line names the console
    listed = await _eventually_json(f"{base}/api/v1/services", lambda d: len(d["services"]) == 2)
    assert [s["name"] for s in listed["services"]] == ["product", "user"]
    answer = await get_json(f"{base}/api/v1/services/user/instances")
    (instance,) = answer["service"]["instances"]
    assert instance["instance_id"] == instance_id(user)
    assert instance["address"] == user.address
    assert instance["register_time_ms"] <= instance["renew_time_ms"]
    assert instance["ttl_s"] > 0 and instance["health"] in {"SERVING", "UNKNOWN"}


async def test_with_a_token_the_page_asks_for_it_and_shows_no_data(
    launcher: Launcher, tmp_path: Path
) -> None:
    token = "console-test-token-42"
    registry, user, _product = await start_stack(launcher, tmp_path, "--token", token)
    url = f"http://{http_address(registry)}/"
    async with browser_page(tmp_path / "profile") as (page, errors):
        answer = await page.goto(url)
        assert answer is not None and answer.status == 401
        await expect(page.get_by_label("Registry token")).to_be_visible()
        assert await page.locator("#services, #instances, #timeline").count() == 0
        assert user.address not in await page.content()
        api = await page.request.get(url + "api/v1/services")
        assert api.status == 401
        assert _only_unauthorized(errors), errors

        await page.get_by_label("Registry token").fill("wrong")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_be_visible()
        assert _only_unauthorized(errors), errors
        errors.clear()

        await page.get_by_label("Registry token").fill(token)
        await page.get_by_role("button", name="Sign in").click()
        row = page.locator(f'#service-user tbody tr[data-instance="{instance_id(user)}"]')
        await expect(row).to_be_visible(timeout=5_000)
        cookies = await page.context.cookies()
        (cookie,) = [c for c in cookies if c["name"] == "switchboard_console"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert token not in cookie["value"]
        assert errors == []
