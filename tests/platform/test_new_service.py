"""``switchboard new-service``: bad names are one line; a generated service works end to end.

The end-to-end test copies the repository (its tracked files) to a temporary
directory, runs ``switchboard new-service orders`` there (which runs ``make
protos``), runs the new service's own tests, lint and types, then starts the
platform with ``switchboard run`` and calls the new service through grpcurl.
The copy reuses this venv: ``PYTHONPATH`` puts the copy's packages first, and
``.venv`` is a link to this one (its install stamp is kept newer than the copy's
``pyproject.toml``, so ``make`` never reinstalls anything).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import REPO, SWITCHBOARD, running_platform
from services.platform import Names, ScaffoldError, new_service
from tests._support import require_tools

GRPCURL = REPO / ".tools" / "bin" / "grpcurl"
STEP_TIMEOUT_S = 300.0
SERVICE = "switchboard.orders.v1.OrdersService"


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT_S
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout


# --- names -------------------------------------------------------------------------


@pytest.fixture
def skeleton(tmp_path: Path) -> Path:
    """A repository-shaped folder: the platform file and an existing user service."""
    shutil.copy(REPO / "switchboard.toml", tmp_path / "switchboard.toml")
    (tmp_path / "services" / "user").mkdir(parents=True)
    return tmp_path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Orders", "'Orders' is not a service name: use 2-30 lower-case letters"),
        ("9lives", "is not a service name"),
        ("order-items", "is not a service name"),
        ("a" * 31, "is not a service name"),
        ("x", "cannot be a service name (too short or reserved)"),
        ("runtime", "cannot be a service name"),
        ("class", "cannot be a service name"),
        ("user", "service 'user' already exists (services/user): choose another name"),
        ("registry", "cannot be a service name"),
    ],
)
def test_a_bad_name_is_one_line_exit_2_and_writes_nothing(
    skeleton: Path, name: str, expected: str
) -> None:
    before = sorted(skeleton.rglob("*"))
    file = skeleton / "switchboard.toml"
    result = run(
        [SWITCHBOARD, "new-service", name, "--file", str(file)], skeleton, dict(os.environ)
    )
    assert result.returncode == 2, result
    assert result.stderr.startswith("switchboard new-service: "), result.stderr
    assert expected in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""
    assert sorted(skeleton.rglob("*")) == before, "nothing written"


def test_a_name_already_in_the_platform_file_is_refused(skeleton: Path) -> None:
    with pytest.raises(ScaffoldError, match=r"already has \[process.product\]"):
        new_service(skeleton, "product", run_protos=False)


def test_names_are_spelled_for_each_template() -> None:
    assert Names.of("orders").values()["Res"] == "Order"
    assert Names.of("orders").values()["a_res"] == "an order"
    values = Names.of("stock_item").values()
    assert (values["Svc"], values["ress"], values["svc_flat"]) == (
        "StockItem",
        "stock_items",
        "stockitem",
    )


# --- end to end --------------------------------------------------------------------


@pytest.fixture(scope="module")
def grpcurl() -> Path:
    """The pinned grpcurl (``make tools-grpcurl``, a no-op once installed)."""
    require_tools("make", why="make tools-grpcurl")
    if not GRPCURL.exists():
        require_tools("go", why="make tools-grpcurl runs go install")
    ok(run(["make", "--no-print-directory", "tools-grpcurl"], REPO, dict(os.environ)))
    return GRPCURL


def copy_repository(target: Path) -> Path:
    """The tracked files of this checkout (as they are on disk) in ``target``, using our venv."""
    listed = ok(run(["git", "ls-files", "-z"], REPO, dict(os.environ))).split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    venv = Path(sys.prefix)
    installed = venv / ".installed"
    if not installed.exists():  # else `make protos` in the copy would reinstall into our venv
        pytest.fail(f"{installed} is missing: run the tests through `make test` (or `make venv`)")
    (target / ".venv").symlink_to(venv)
    stamp = installed.stat().st_mtime
    os.utime(target / "pyproject.toml", (stamp - 1, stamp - 1))  # make: the venv is current
    return target


def copy_env(repo: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env["PYTHONPATH"] = os.pathsep.join([str(repo), str(repo / "generated" / "python")])
    return env


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A copy of the repository with ``orders`` generated in it, and what the command printed."""
    repo = copy_repository(tmp_path_factory.mktemp("repo"))
    printed = ok(run([SWITCHBOARD, "new-service", "orders"], repo, copy_env(repo)))
    yield repo, printed


def test_new_service_prints_what_it_made_and_what_to_run(scaffolded: tuple[Path, str]) -> None:
    repo, printed = scaffolded
    assert printed.startswith(f"created service 'orders' ({SERVICE}, port 50054):\n")
    for path in (
        "protos/switchboard/orders/v1/order.proto",
        "protos/switchboard/orders/v1/orders_service.proto",
        "services/orders/__main__.py",
        "tests/orders/test_servicer.py",
    ):
        assert f"  {path}\n" in printed and (repo / path).is_file(), path
    assert (repo / "generated/python/switchboard/orders/v1/orders_service_pb2_grpc.py").is_file()
    assert "[process.orders]" in (repo / "switchboard.toml").read_text()
    assert f"{SERVICE}/CreateOrder" in printed


def test_the_new_service_passes_its_own_tests_lint_and_types(
    scaffolded: tuple[Path, str],
) -> None:
    repo, _ = scaffolded
    env, bin_ = copy_env(repo), Path(sys.executable).parent
    tests = ok(
        run(
            [sys.executable, "-m", "pytest", "tests/orders", "-q", "-p", "no:cacheprovider"],
            repo,
            env,
        )
    )
    assert " passed" in tests and "failed" not in tests and "skipped" not in tests
    new = ["services/orders", "tests/orders"]
    ok(run([str(bin_ / "ruff"), "check", *new], repo, env))
    ok(run([str(bin_ / "ruff"), "format", "--check", *new], repo, env))
    ok(run([str(bin_ / "mypy"), *new], repo, env))
    ok(run([str(bin_ / "buf"), "lint"], repo, env))
    layers = ok(
        run(
            [
                sys.executable,
                "-m",
                "pytest",
                "tests/test_quality.py",
                "-q",
                "-p",
                "no:cacheprovider",
                "-k",
                "one_way",
            ],
            repo,
            env,
        )
    )
    assert "1 passed" in layers


def test_switchboard_run_starts_it_and_grpcurl_calls_it(
    scaffolded: tuple[Path, str], grpcurl: Path, tmp_path: Path
) -> None:
    repo, _ = scaffolded
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**copy_env(repo), "ORDERS_PORT": str(port)}
    with running_platform(tmp_path, env=env, repo=repo) as platform:
        assert f"orders 127.0.0.1:{port}" in platform.output()
        target = f"127.0.0.1:{port}"

        def call(method: str, body: dict[str, object], address: str = target) -> object:
            args = [str(grpcurl), "-plaintext", "-d", json.dumps(body), address, method]
            return json.loads(ok(run(args, repo, env)))

        created = call(f"{SERVICE}/CreateOrder", {"order": {"display_name": "first"}})
        assert isinstance(created, dict)
        order = created["order"]
        fetched = call(f"{SERVICE}/GetOrder", {"id": order["id"]})
        assert fetched == {"order": order}
        listed = call(
            "switchboard.registry.v1.RegistryService/ListServices",
            {},
            platform.ports.address("registry"),
        )
        assert isinstance(listed, dict)
        assert {"name": "orders", "instance_count": 1} in [
            {"name": s["name"], "instance_count": s["instance_count"]} for s in listed["services"]
        ]
        described = ok(run([str(grpcurl), "-plaintext", target, "describe", SERVICE], repo, env))
        assert "Creates an order." in described  # the contract's comments, via reflection


def test_the_readme_quickstart_shows_the_real_output(scaffolded: tuple[Path, str]) -> None:
    _, printed = scaffolded
    readme = (REPO / "README.md").read_text()
    command = "$ .venv/bin/switchboard new-service orders\n"
    assert command in readme, "the quickstart shows switchboard new-service"
    shown = readme.split(command, 1)[1].split("```", 1)[0]
    assert shown == printed
