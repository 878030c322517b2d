"""Registry settings from flags, environment and token files."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry import RegistrySettings, StoreLimits, build_parser, parse_args
from services.runtime import ConfigError


def _settings(argv: list[str], env: dict[str, str] | None = None) -> RegistrySettings:
    return RegistrySettings.from_args(build_parser().parse_args(argv), env or {})


def test_defaults_have_no_token() -> None:
    settings = _settings([])
    assert settings.token is None
    assert (settings.ttl_min, settings.ttl_default, settings.ttl_max) == (1.0, 10.0, 300.0)
    assert settings.limits == StoreLimits()


def test_flags_beat_environment() -> None:
    env = {"SWITCHBOARD_TTL_MAX": "60", "SWITCHBOARD_MAX_WATCHERS": "5", "SWITCHBOARD_TOKEN": "e"}
    settings = _settings(["--ttl-max", "30", "--history", "7"], env)
    assert settings.ttl_max == 30.0 and settings.token == "e"
    assert settings.limits.max_watchers == 5 and settings.limits.history == 7


def test_token_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("from-file\n")
    assert _settings(["--token-file", str(path)]).token == "from-file"
    assert _settings([], {"SWITCHBOARD_TOKEN_FILE": str(path)}).token == "from-file"
    assert "from-file" not in repr(_settings(["--token-file", str(path)]))


@pytest.mark.parametrize(
    "argv",
    [
        ["--ttl-min", "10", "--ttl-max", "5"],
        ["--ttl-default", "0"],
        ["--ttl-default", "400"],
        ["--token", "has space"],
        ["--token", "a", "--token-file", "/dev/null"],
        ["--token-file", "/nonexistent/token"],
        ["--token-file", "/dev/null"],
        ["--max-watchers", "0"],
        ["--history", "-1"],
    ],
)
def test_bad_settings_are_config_errors(argv: list[str]) -> None:
    with pytest.raises(ConfigError):
        _settings(argv)


def test_bad_environment_value() -> None:
    with pytest.raises(ConfigError, match="SWITCHBOARD_TTL_MIN"):
        _settings([], {"SWITCHBOARD_TTL_MIN": "soon"})


def test_parse_args_exits_2_on_a_bad_value(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse_args(["--ttl-min", "10", "--ttl-max", "5"])
    assert caught.value.code == 2
    assert "--ttl-min" in capsys.readouterr().err


def test_no_etcd_means_the_memory_store() -> None:
    assert _settings([]).etcd is None


def test_etcd_settings_from_flags_and_environment(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    argv = ["--etcd", "10.0.0.1:2379, 10.0.0.2:2379", "--etcd-prefix", "/sb/", "--etcd-user", "sb"]
    etcd = _settings([*argv, "--etcd-password-file", str(password)]).etcd
    assert etcd is not None and etcd.endpoints == ("10.0.0.1:2379", "10.0.0.2:2379")
    assert (etcd.prefix, etcd.user, etcd.password) == ("/sb/", "sb", "s3cret")
    assert "s3cret" not in repr(etcd)
    env = {"SWITCHBOARD_ETCD": "[::1]:2379", "SWITCHBOARD_ETCD_PASSWORD": "p"}
    etcd = _settings(["--etcd-user", "sb"], env).etcd
    assert etcd is not None and etcd.endpoints == ("[::1]:2379",) and etcd.password == "p"
    assert etcd.prefix == "/switchboard/registry/v1/"


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--etcd", "nohost"], {}, "HOST:PORT"),
        (["--etcd", "h:70000"], {}, "HOST:PORT"),
        (["--etcd", ","], {}, "at least one"),
        (["--etcd", "h:1", "--etcd-prefix", "noslash"], {}, "start and end"),
        (["--etcd", "h:1", "--etcd-user", "u"], {}, "password"),
        (["--etcd", "h:1", "--etcd-cert", "c.pem"], {}, "together"),
        (["--etcd-prefix", "/x/"], {}, "need --etcd"),
        (["--etcd", "h:1", "--etcd-timeout", "0"], {}, "greater than 0"),
    ],
)
def test_bad_etcd_settings_name_the_flag(
    argv: list[str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _settings(argv, env)
