"""``python -m bench`` in quick mode, end to end: every case runs and reports a throughput.

Speeds are not judged here (that is the report's job, on a quiet machine): only
that the JSON report parses, every case ran with a non-zero rate, and every
target got a verdict. The tools come through make, as for a person: ghz
(pinned, into .tools/) and etcd (Debian's package). A missing tool is a
failure that names it, never a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS_TIMEOUT_S = 900
BENCH_TIMEOUT_S = 480

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(TOOLS_TIMEOUT_S + BENCH_TIMEOUT_S + 60)]


def _make_tools() -> None:
    """``make tools-ghz tools-etcd`` (a no-op once installed)."""
    done = subprocess.run(
        ["make", "--no-print-directory", "tools-ghz", "tools-etcd"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TOOLS_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"make tools-ghz tools-etcd failed:\n{done.stdout}{done.stderr}"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The JSON report of one quick run (results written to a temp dir, not bench/results)."""
    _make_tools()
    out = tmp_path_factory.mktemp("bench")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT_S,
        check=False,
    )
    path = out / "latest.json"
    assert path.exists(), f"no report (exit {done.returncode}):\n{done.stderr[-3000:]}"
    data: dict[str, Any] = json.loads(path.read_text())
    data["_stdout"], data["_stderr"] = done.stdout, done.stderr
    return data


def test_every_case_ran_with_a_throughput(report: dict[str, Any]) -> None:
    not_run = {c["key"]: c["error"] for c in report["cases"] if not c["ran"]}
    assert not not_run, "cases that did not run:\n" + "\n".join(
        f"  {key}: {why}" for key, why in not_run.items()
    )
    for case in report["cases"]:
        rate = case["summary"]["rate"]
        assert rate is not None and rate["median"] > 0, f"{case['key']} has no throughput"
        assert len(case["reps"]) >= 2, f"{case['key']} has {len(case['reps'])} repetition(s)"


def test_every_target_has_a_verdict(report: dict[str, Any]) -> None:
    verdicts = {t["name"]: t["verdict"] for t in report["targets"]}
    # 15 of the registry, xDS and services, 5 against etcd (issue 17), 5 of the etcd store
    assert len(verdicts) == 25
    unmeasured = [name for name, verdict in verdicts.items() if verdict == "NOT MEASURED"]
    assert not unmeasured, f"targets not measured: {unmeasured}"


def test_the_table_is_printed(report: dict[str, Any]) -> None:
    out = report["_stdout"]
    assert "## Targets" in out and "## Cases" in out and "etcd" in out
    assert "Traceback" not in out
