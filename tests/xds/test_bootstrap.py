"""The bootstrap printer: the function, ``python -m registry.xds bootstrap``, the template."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from registry.xds import DEFAULT_NODE_ID, bootstrap, bootstrap_json
from registry.xds.__main__ import main

REPO = Path(__file__).resolve().parents[2]


def test_plaintext_bootstrap_names_the_registry_and_speaks_v3() -> None:
    config = bootstrap("registry.internal:50051")
    [server] = config["xds_servers"]
    assert server == {
        "server_uri": "registry.internal:50051",
        "channel_creds": [{"type": "insecure"}],
        "server_features": ["xds_v3"],
    }
    assert config["node"]["id"] == DEFAULT_NODE_ID


def test_tls_and_mtls_use_the_tls_channel_creds_with_absolute_paths(tmp_path: Path) -> None:
    ca, cert, key = tmp_path / "ca.pem", tmp_path / "c.pem", tmp_path / "k.pem"
    [creds] = bootstrap("r:1", ca_file=ca)["xds_servers"][0]["channel_creds"]
    assert creds == {"type": "tls", "config": {"ca_certificate_file": str(ca)}}
    [creds] = bootstrap("r:1", ca_file=ca, cert_file=cert, key_file=key)["xds_servers"][0][
        "channel_creds"
    ]
    assert creds["config"]["certificate_file"] == str(cert)
    assert creds["config"]["private_key_file"] == str(key)


@pytest.mark.parametrize(
    "options",
    [
        {"cert_file": Path("c")},
        {"key_file": Path("k")},
        {"cert_file": Path("c"), "key_file": Path("k")},
    ],
)
def test_half_an_mtls_setup_is_refused(options: dict[str, Path]) -> None:
    with pytest.raises(ValueError):
        bootstrap("r:1", **options)  # type: ignore[arg-type]


def test_the_command_prints_the_functions_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bootstrap", "--registry", "127.0.0.1:50051"]) == 0
    assert capsys.readouterr().out == bootstrap_json("127.0.0.1:50051")


def test_the_command_exits_2_with_one_line_on_a_bad_combination() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "registry.xds",
            "bootstrap",
            "--registry",
            "r:1",
            "--cert-file",
            "c",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "give both cert_file and key_file" in done.stderr.splitlines()[-1]


def test_the_deployed_template_is_what_the_function_prints_for_the_default_port() -> None:
    template = json.loads((REPO / "deploy" / "xds" / "bootstrap.json").read_text())
    assert template == bootstrap("127.0.0.1:50051")
