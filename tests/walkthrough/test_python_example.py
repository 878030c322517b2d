"""README.md's Python examples, run as written with the project's venv, twice in a row."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness import REPO, running_platform

pytestmark = pytest.mark.e2e

HEADING = "## Calling services from Python"


def python_examples(readme: str) -> list[str]:
    """The ```python blocks of the section that explains the Python client."""
    section = readme[readme.index(HEADING) :]
    section = section[: section.index("\n## ", len(HEADING))]
    return re.findall(r"^```python\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("which", ["async", "sync"])
def test_the_python_example_runs_twice_against_make_run(tmp_path: Path, which: str) -> None:
    examples = python_examples((REPO / "README.md").read_text())
    assert len(examples) == 2, "an async and a sync example"
    code = examples[0 if which == "async" else 1]
    assert "127.0.0.1:50051" in code
    with running_platform(tmp_path) as platform:
        script = tmp_path / "example.py"
        script.write_text(code.replace("127.0.0.1:50051", f"127.0.0.1:{platform.ports.registry}"))
        for _ in range(2):  # data persists between runs: the second must not collide
            result = subprocess.run(
                [sys.executable, str(script)],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert result.returncode == 0, result.stderr[-2000:]
            user_id, name = result.stdout.split()
            assert user_id and name == {"async": "Grace", "sync": "Alan"}[which]
