"""switchboard.toml: read, ordered, overridden by the environment, and every mistake one line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness import REPO, SWITCHBOARD
from services.platform import (
    PlatformFileError,
    find_platform_file,
    load_platform,
    restart_delay,
)

GOOD = """\
[platform]
registry = "reg"

[process.reg]
module = "registry"
port = 7001

[process.b]
module = "services.b"
port = 7003
after = ["a", "reg"]
args = ["--verbose"]

[process.a]
module = "services.a"
port = 7002
after = ["reg"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "switchboard.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(PlatformFileError) as caught:
        load_platform(write(tmp_path, text), env or {})
    message = str(caught.value)
    assert "\n" not in message, "one line"
    return message


def test_the_repository_platform_file_starts_the_registry_first() -> None:
    platform = load_platform(REPO / "switchboard.toml", {})
    assert [p.name for p in platform.start_order()] == ["registry", "user", "product"]
    assert [[p.name for p in level] for level in platform.levels()] == [
        ["registry"],
        ["user", "product"],
    ]
    assert platform.address("user") == "127.0.0.1:50052"
    assert find_platform_file(REPO / "services" / "platform") == REPO / "switchboard.toml"


def test_levels_follow_after_not_file_order(tmp_path: Path) -> None:
    platform = load_platform(write(tmp_path, GOOD), {})
    assert [[p.name for p in level] for level in platform.levels()] == [["reg"], ["a"], ["b"]]
    assert platform.process("b").args == ("--verbose",)
    assert platform.registry == "reg"


def test_the_environment_overrides_ports_host_and_data_dir(tmp_path: Path) -> None:
    env = {"A_PORT": "9000", "HOST": "::1", "DATA_DIR": "/srv/sb", "LOG_LEVEL": "debug"}
    platform = load_platform(write(tmp_path, GOOD), env)
    assert platform.process("a").port == 9000 and platform.process("b").port == 7003
    assert (platform.host, platform.data_dir, platform.log_level) == ("::1", "/srv/sb", "DEBUG")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("port = 7002", 'port = "x"'), ":16: [process.a] port = 'x' is not a port number"),
        (("port = 7002", "port = 70000"), "use an integer 1-65535"),
        (("port = 7002", "port = 7001"), "a and reg both use port 7001"),
        (('module = "services.a"', 'modul = "services.a"'), ":15: unknown key 'modul'"),
        (('module = "services.a"', 'module = "services/a.py"'), "is not a Python module name"),
        (('after = ["reg"]\n', 'after = ["nobody"]\n'), ":17: [process.a] after names 'nobody'"),
        (('after = ["reg"]\n', 'after = ["b"]\n'), "form a cycle: remove one dependency"),
        (('after = ["reg"]\n', 'after = "reg"\n'), "after must be a list of strings"),
        (('registry = "reg"', 'registry = "etcd"'), "names no process: add [process.etcd]"),
        (("[process.a]", "[process.A]"), "process name 'A' must be lower-case"),
        (("[platform]", "[platfrom]"), "unknown table or key 'platfrom'"),
        (("port = 7002", "port = 7002\nport = 7002"), "not valid TOML"),
    ],
)
def test_each_mistake_is_one_line_naming_where_and_the_fix(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    old, new = edit
    assert old in GOOD
    message = error_of(tmp_path, GOOD.replace(old, new, 1))
    assert expected in message, message
    assert message.startswith(str(tmp_path / "switchboard.toml")), message


def test_a_missing_module_names_the_table_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD.replace('module = "services.a"\n', ""))
    assert message.endswith(':14: [process.a] needs module = "..."'), message


def test_a_bad_port_variable_names_the_variable(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD, {"A_PORT": "0"})
    assert message == "A_PORT='0' is not a port number: use 1-65535, e.g. A_PORT=6000"


def test_no_platform_file_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(PlatformFileError, match="no switchboard.toml in .* or pass --file"):
        find_platform_file(tmp_path)


def test_restarts_back_off_exponentially_up_to_a_cap() -> None:
    assert [restart_delay(n) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.4, 0.8]
    assert restart_delay(50) == 10.0


def test_switchboard_run_with_a_bad_file_is_one_line_exit_2_and_starts_nothing(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, GOOD.replace("port = 7002", "port = -1"))
    result = subprocess.run(
        [SWITCHBOARD, "run", "--file", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"switchboard run: {path}:16: [process.a] port = -1 is not a port number: "
        "use an integer 1-65535, e.g. port = 50060\n"
    )
    assert result.stdout == ""
