"""ServerConfig: flag beats environment beats default, and bad values are one-line errors."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from services.runtime import RegistryConfig, add_registry_arguments
from services.runtime.config import (
    _OPTIONS,
    LOG_LEVELS,
    ConfigError,
    ServerConfig,
    add_server_arguments,
    parse_server_config,
)
from tests.runtime._certs import make_pki


def _parser(default_port: int = 50052) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svc")
    add_server_arguments(parser, default_port=default_port)
    return parser


def _config(argv: list[str], env: dict[str, str] | None = None) -> ServerConfig:
    return ServerConfig.from_args(_parser().parse_args(argv), env or {})


def test_defaults() -> None:
    config = _config([])
    assert (config.host, config.port) == ("127.0.0.1", 50052)
    assert config.max_receive_message_bytes == 4 * 1024 * 1024
    assert config.max_concurrent_streams == 256
    assert config.max_metadata_bytes == 16 * 1024
    assert config.grace_s == 10.0
    assert not config.tls and not config.mtls
    assert ServerConfig().listen == "127.0.0.1:0"


def test_flag_beats_env_beats_default() -> None:
    env = {"SWITCHBOARD_GRACE_S": "7", "SWITCHBOARD_MAX_CONCURRENT_STREAMS": "9"}
    config = _config(["--grace-s", "3"], env)
    assert config.grace_s == 3.0  # flag
    assert config.max_concurrent_streams == 9  # env
    assert config.keepalive_time_s == 60.0  # default


def test_listen_from_env_replaces_the_binary_default() -> None:
    assert _config([], {"SWITCHBOARD_LISTEN": "0.0.0.0:6000"}).port == 6000
    assert _config(["--listen", "127.0.0.1:0"], {"SWITCHBOARD_LISTEN": "x:1"}).port == 0


def test_every_field_has_a_flag_and_an_env_var() -> None:
    fields = {f.name for f in dataclasses.fields(ServerConfig)}
    assert {option.field for option in _OPTIONS} == fields
    help_text = _parser().format_help()
    for option in _OPTIONS:
        assert option.flag in help_text
        assert option.env in help_text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"listen": "127.0.0.1:70000"}, "port must be 0-65535"),
        ({"listen": "127.0.0.1"}, "expected host:port"),
        ({"listen": "host:port"}, "expected host:port"),
        ({"max_concurrent_streams": 0}, "--max-concurrent-streams: must be greater than 0"),
        ({"grace_s": -1.0}, "--grace-s: must not be negative"),
        ({"log_level": "LOUD"}, "invalid --log-level"),
        ({"tls_cert": Path("/nonexistent/cert.pem")}, "given together"),
        ({"tls_client_ca": Path("/nonexistent/ca.pem")}, "needs --tls-cert"),
    ],
)
def test_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ServerConfig(**kwargs)  # type: ignore[arg-type]


def test_missing_key_file(tmp_path: Path) -> None:
    cert = tmp_path / "server.crt"
    cert.write_text("not checked here")
    with pytest.raises(ConfigError, match=r"--tls-key '.*missing.key': no such readable file"):
        ServerConfig(tls_cert=cert, tls_key=tmp_path / "missing.key")


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="invalid SWITCHBOARD_GRACE_S='soon'"):
        _config([], {"SWITCHBOARD_GRACE_S": "soon"})


def test_parse_server_config_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_server_config(_parser(), ["--listen", "127.0.0.1:99999"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "invalid --listen '127.0.0.1:99999': port must be 0-65535" in err
    assert "Traceback" not in err


def test_parse_server_config_reads_flags() -> None:
    assert parse_server_config(_parser(), ["--listen", "127.0.0.1:0"]).port == 0


def test_addresses() -> None:
    config = ServerConfig(listen="127.0.0.1:0")
    assert config.listen_on(5000) == "127.0.0.1:5000"
    assert config.advertise_address(5000) == "127.0.0.1:5000"
    assert ServerConfig(advertise_host="svc.local").advertise_address(1) == "svc.local:1"
    assert ServerConfig(listen="[::1]:0").advertise_address(1) == "[::1]:1"
    assert ServerConfig(listen="0.0.0.0:0").advertise_address(1) != "0.0.0.0:1"


def _registry_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svc", exit_on_error=False)
    add_registry_arguments(parser)
    return parser


@pytest.mark.parametrize(
    ("argv", "tls"),
    [
        ([], False),
        (["--registry-tls"], True),
        (["--registry-tls=no"], False),
        (["--registry-tls", "on"], True),
    ],
)
def test_a_yes_no_flag_is_a_switch(argv: list[str], tls: bool) -> None:
    ns = _registry_parser().parse_args(["--registry", "127.0.0.1:50051", *argv])
    assert RegistryConfig.from_args(ns, {}).tls is tls


def test_a_yes_no_value_that_is_neither_is_refused() -> None:
    with pytest.raises(argparse.ArgumentError, match="expected yes or no"):
        _registry_parser().parse_args(["--registry-tls=maybe"])
    with pytest.raises(ConfigError, match="SWITCHBOARD_REGISTRY_TLS='maybe'"):
        RegistryConfig.from_env({"SWITCHBOARD_REGISTRY_TLS": "maybe"})


@pytest.mark.parametrize("address", ["nohost", "host:", ":50051", "host:99999", "host:port"])
def test_a_malformed_registry_address_is_refused_at_start(address: str) -> None:
    with pytest.raises(argparse.ArgumentError, match="is not host:port"):
        _registry_parser().parse_args(["--registry", address])
    with pytest.raises(ConfigError, match="is not host:port"):
        RegistryConfig.from_env({"SWITCHBOARD_REGISTRY": f"127.0.0.1:1,{address}"})


def test_log_level_help_and_error_name_the_same_levels() -> None:
    help_text = _parser().format_help()
    with pytest.raises(ConfigError) as caught:
        ServerConfig(log_level="LOUD")
    listed = ", ".join(LOG_LEVELS)
    assert listed in " ".join(help_text.split()) and listed in str(caught.value)


def test_a_key_that_does_not_match_the_certificate_is_named(tmp_path: Path) -> None:
    _ca, server, client = make_pki(tmp_path)
    with pytest.raises(ConfigError, match="is not the private key of --tls-cert") as caught:
        ServerConfig(tls_cert=server.cert, tls_key=client.key)
    assert str(client.key) in str(caught.value) and "\n" not in str(caught.value)
    ServerConfig(tls_cert=server.cert, tls_key=server.key)  # the right pair is accepted


@pytest.mark.parametrize("which", ["tls_cert", "tls_key", "tls_client_ca"])
def test_a_file_that_is_not_pem_is_named(tmp_path: Path, which: str) -> None:
    ca, server, _client = make_pki(tmp_path)
    files: dict[str, Any] = {
        "tls_cert": server.cert,
        "tls_key": server.key,
        "tls_client_ca": ca.cert,
    }
    files[which] = tmp_path / "garbage.pem"
    files[which].write_text("-----BEGIN NOTHING-----\nnot pem\n")
    flag = "--" + which.replace("_", "-")
    with pytest.raises(ConfigError, match=flag):
        ServerConfig(**files)
