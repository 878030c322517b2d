"""Go, TypeScript and Java clients, generated from protos/, calling the Python services.

Each client is built by ``make stubs interop`` (once per session) and run
against a platform started as ``make run`` starts it; it must exit 0 and print
a ``PASS`` line for each of its checks (see interop/*/ and ``_clients``).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness import TIMINGS, Platform
from registry.xds import bootstrap_json
from tests._support import require_tools
from tests.interop._clients import CLIENTS, XDS_CHECKS, XDS_LANGUAGES

pytestmark = [pytest.mark.interop, pytest.mark.e2e, pytest.mark.timeout(900)]


def check_lines(stdout: str) -> dict[str, str]:
    """``{check: detail}`` of the client's ``PASS check: detail`` lines."""
    passed = {}
    for line in stdout.splitlines():
        if line.startswith("PASS "):
            name, _, detail = line.removeprefix("PASS ").partition(": ")
            passed[name] = detail
    return passed


@pytest.mark.parametrize("language", CLIENTS)
def test_client_passes_every_check_against_the_python_services(
    language: str, built_languages: list[str], platform: Platform
) -> None:
    client = CLIENTS[language]
    require_tools("make", *client.tools, why=f"the {language} interop client")
    assert language in built_languages, "the toolchain is there, so the client must be built"
    started = time.monotonic()
    result = client.run(platform.ports.address("user"))
    TIMINGS[f"interop: {language} client run"] = time.monotonic() - started
    report = f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, report
    passed = check_lines(result.stdout)
    assert set(passed) == set(client.checks), report
    for name, fragment in client.checks.items():
        assert fragment in passed[name], f"{name}: {passed[name]!r} lacks {fragment!r}"
    assert result.stdout.rstrip().endswith(f"ALL CHECKS PASSED ({len(client.checks)})"), report


@pytest.mark.parametrize("language", CLIENTS)
def test_client_help_prints_its_usage_and_exits_0(
    language: str, built_languages: list[str]
) -> None:
    """``--help`` is not taken for an address: usage on stdout, exit 0, no call made."""
    client = CLIENTS[language]
    require_tools("make", *client.tools, why=f"the {language} interop client")
    assert language in built_languages, "the toolchain is there, so the client must be built"
    result = client.run("--help")
    report = f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, report
    assert result.stdout.startswith(f"usage: interop-{language} USER_"), report
    assert check_lines(result.stdout) == {}, report
    assert "CHECKS" not in result.stdout, report


@pytest.mark.parametrize("language", XDS_LANGUAGES)
def test_client_passes_every_check_through_xds_targets(
    language: str, built_languages: list[str], platform: Platform, tmp_path: Path
) -> None:
    """No address given: the client finds user and product through the registry's xDS."""
    client = CLIENTS[language]
    require_tools("make", *client.tools, why=f"the {language} interop client")
    assert language in built_languages, "the toolchain is there, so the client must be built"
    bootstrap = tmp_path / "bootstrap.json"
    bootstrap.write_text(bootstrap_json(platform.ports.address("registry")))
    started = time.monotonic()
    result = client.run("xds:///user", "xds:///product", env={"GRPC_XDS_BOOTSTRAP": str(bootstrap)})
    TIMINGS[f"interop: {language} client run over xDS"] = time.monotonic() - started
    report = f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, report
    passed = check_lines(result.stdout)
    assert set(passed) == set(XDS_CHECKS), report
    for name, fragment in XDS_CHECKS.items():
        assert fragment in passed[name], f"{name}: {passed[name]!r} lacks {fragment!r}"
    assert result.stdout.rstrip().endswith(f"ALL CHECKS PASSED ({len(XDS_CHECKS)})"), report


def test_a_missing_toolchain_skips_but_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-toolchain-xyz not found"):
        require_tools("no-such-toolchain-xyz", why="guard test")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_tools("no-such-toolchain-xyz", why="guard test")
    require_tools("sh", why="present tools never skip")
