"""The code stays lint-clean, typed, and layered the way DESIGN.md draws it.

Layers: ``generated`` ← ``services.runtime`` ← ``registry``, ``services.user``,
``services.product``. A service never imports another service; the runtime
imports no service; generated code imports nothing hand-written.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# Which hand-written top-level packages each layer may import.
ALLOWED: dict[str, set[str]] = {
    "services.runtime": {"services.runtime", "switchboard"},
    "registry": {"registry", "services.runtime", "switchboard"},
    "services.user": {"services.user", "services.runtime", "switchboard"},
    "services.product": {"services.product", "services.runtime", "switchboard"},
    "switchboard": {"switchboard"},
    "services": set(),  # services/__init__.py: a namespace, imports nothing of ours
}
OURS = ("services", "registry", "switchboard", "bench", "tests")


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_lint_is_clean(command: list[str]) -> None:
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def _layer_of(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {n for n in names if n.split(".")[0] in OURS}


def _modules() -> list[tuple[str, Path]]:
    roots = [ROOT / "services", ROOT / "registry", ROOT / "generated/python/switchboard"]
    found = []
    for root in roots:
        for path in root.rglob("*.py"):
            rel = path.relative_to(ROOT / "generated/python" if "generated" in path.parts else ROOT)
            found.append((".".join(rel.with_suffix("").parts), path))
    return found


def test_dependencies_point_one_way() -> None:
    broken = []
    for module, path in _modules():
        layer = _layer_of(module)
        assert layer is not None, f"{module} belongs to no layer"
        for name in _imports(path):
            if _layer_of(name) not in ALLOWED[layer]:
                broken.append(f"{module} imports {name}")
    assert not broken, "\n".join(sorted(broken))


def test_the_layer_check_sees_a_violation(tmp_path: Path) -> None:
    """The checker is real: a user-service module importing product code is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from services.product import _store\n")
    assert _layer_of("services.product._store") not in ALLOWED["services.user"]
    assert _imports(bad) == {"services.product"}
