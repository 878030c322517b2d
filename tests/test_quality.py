"""The code stays lint-clean, typed, and layered the way ARCHITECTURE.md draws it.

Layers (see ARCHITECTURE.md, "Layers"): generated code (``switchboard`` and the
vendored third-party APIs) <- ``services.runtime`` <- ``services.platform``,
``registry`` and every service package ``services.<name>``. A service never
imports another service; the runtime and the platform import no service and
name none; generated code imports nothing hand-written. The test harness
(``harness``: processes, in-process servers, the platform, etcd, PostgreSQL)
may import all of those and is imported only by ``tests`` and ``bench``, which
may import any layer; ``bench`` imports nothing of ``tests``, and no test module
(``test_*.py``) nor conftest is imported by anything: shared helpers live in support
modules.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GENERATED = ROOT / "generated/python"
# Top-level generated packages: our contracts and the vendored third-party API subsets.
GENERATED_TOPS = frozenset(p.name for p in GENERATED.iterdir() if (p / "__init__.py").exists())
# Service packages: every folder of services/ but the runtime and the platform.
PLATFORM_PACKAGES = {"runtime", "platform"}
SERVICES = sorted(
    p.name
    for p in (ROOT / "services").iterdir()
    if (p / "__init__.py").exists() and p.name not in PLATFORM_PACKAGES
)


def _allowed() -> dict[str, set[str]]:
    """Which layers each layer may import (a layer may always import itself)."""
    base = {"services.runtime", *GENERATED_TOPS}
    services = {f"services.{name}" for name in SERVICES}
    rules: dict[str, set[str]] = {
        "harness": {*base, "registry", "services.platform", *services},
        "services.runtime": set(GENERATED_TOPS),
        "services.platform": base,
        "registry": base,
        "services": set(),  # services/__init__.py: a namespace, imports nothing of ours
        **{top: set(GENERATED_TOPS) for top in GENERATED_TOPS},
        **{f"services.{name}": set(base) for name in SERVICES},
    }
    return {layer: allowed | {layer} for layer, allowed in rules.items()}


ALLOWED = _allowed()
OURS = frozenset({"services", "registry", "harness", "bench", "tests", *GENERATED_TOPS})


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


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute name a (possibly relative) ``from`` import refers to."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(module, path, node)
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] in OURS}


def _module_name(path: Path) -> str:
    rel = path.relative_to(GENERATED if GENERATED in path.parents else ROOT)
    parts = rel.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(*roots: Path) -> list[tuple[str, Path]]:
    return [(_module_name(p), p) for root in roots for p in sorted(root.rglob("*.py"))]


def _layered_modules() -> list[tuple[str, Path]]:
    return _modules(
        ROOT / "services",
        ROOT / "registry",
        ROOT / "harness",
        *(GENERATED / top for top in GENERATED_TOPS),
    )


def _may_import(layer: str, name: str) -> bool:
    target = _layer_of(name)
    if target is None:  # bench or tests: never imported by a layer
        return False
    return target in ALLOWED[layer]


def test_dependencies_point_one_way() -> None:
    broken = []
    for module, path in _layered_modules():
        layer = _layer_of(module)
        assert layer is not None, f"{module} belongs to no layer (see ARCHITECTURE.md)"
        for name in _imports(module, path):
            if not _may_import(layer, name):
                broken.append(f"{module} imports {name}")
    assert not broken, "layers broken (see ARCHITECTURE.md):\n" + "\n".join(sorted(broken))


def test_bench_imports_no_test_code() -> None:
    """What the bench shares with the tests lives in the harness, not in tests/."""
    broken = [
        f"{module} imports {name}"
        for module, path in _modules(ROOT / "bench")
        for name in _imports(module, path)
        if name.split(".")[0] == "tests"
    ]
    assert not broken, "move it into harness/ (see ARCHITECTURE.md):\n" + "\n".join(broken)


def _is_test_module(name: str) -> bool:
    """A test module (``test_*``) or a conftest: pytest's to load, nobody's to import."""
    return any(part.startswith("test_") or part == "conftest" for part in name.split("."))


def test_no_module_imports_a_test_module() -> None:
    broken = [
        f"{module} imports {name}"
        for module, path in _modules(ROOT / "tests", ROOT / "bench")
        for name in _imports(module, path)
        if _is_test_module(name) and not name.startswith(module)
    ]
    assert not broken, "move shared helpers into a support module:\n" + "\n".join(broken)


def test_the_test_module_check_sees_a_conftest_import() -> None:
    assert _is_test_module("tests.client.conftest")
    assert _is_test_module("tests.user.test_process")
    assert not _is_test_module("tests.client._support")


def _service_patterns(name: str) -> re.Pattern[str]:
    """What naming a concrete service looks like in code or docs."""
    cap = name.capitalize()
    return re.compile(
        rf"services[./]{name}\b|switchboard[./]{name}\b|\b{name}(_service)?_pb2"
        rf"|\b{cap}(Service|Client|Servicer|Store)\b|[\"']{name}[\"']|\b{name}\.db\b"
    )


@pytest.mark.parametrize("package", sorted(PLATFORM_PACKAGES))
def test_the_platform_names_no_service(package: str) -> None:
    """The runtime and the platform work for services they have never heard of."""
    patterns = [(name, _service_patterns(name)) for name in SERVICES]
    found = [
        f"{path.relative_to(ROOT)}:{number}: names {name!r}: {line.strip()}"
        for path in sorted((ROOT / "services" / package).rglob("*"))
        if path.is_file() and path.suffix in {".py", ".toml", ".txt", ".md"}
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for name, pattern in patterns
        if pattern.search(line)
    ]
    assert not found, "\n".join(found)


def test_the_layer_check_sees_a_violation(tmp_path: Path) -> None:
    """The checker is real: a service importing another service, absolutely or relatively."""
    bad = tmp_path / "bad.py"
    bad.write_text("from services.product import _store\nfrom ..product import client\n")
    names = _imports("services.user._bad", bad)
    assert "services.product" in names and "services.product.client" in names
    assert _layer_of("services.product._store") not in ALLOWED["services.user"]


def test_only_tests_and_bench_use_the_harness(tmp_path: Path) -> None:
    """The harness is a layer of its own: no shipped code imports it, it imports no test."""
    bad = tmp_path / "bad.py"
    bad.write_text("from harness import Launcher\nfrom tests._support import failure\n")
    names = _imports("services.runtime._bad", bad)
    assert not _may_import("services.runtime", "harness.Launcher")
    assert not _may_import("registry", "harness")
    assert not _may_import("harness", "tests._support.failure")
    assert not _may_import("harness", "bench._procs")
    assert {"harness", "tests._support"} <= names


def test_the_naming_check_sees_a_service() -> None:
    pattern = _service_patterns("user")
    assert pattern.search('conn = await client.connect("user")')
    assert pattern.search("from switchboard.user.v1 import user_pb2")
    assert not pattern.search("the caller's end user")
