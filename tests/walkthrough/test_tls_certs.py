"""`switchboard tls` makes certificates that the services and grpcurl accept, over mTLS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness import REPO, Launcher

pytestmark = pytest.mark.e2e

SWITCHBOARD = [sys.executable, "-m", "services.platform"]
HEALTH = "grpc.health.v1.Health/Check"


def switchboard(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [*SWITCHBOARD, *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60)


def call(grpcurl: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(grpcurl), *args], capture_output=True, text=True, timeout=20)


def test_a_ca_and_a_service_certificate_in_two_commands(tmp_path: Path) -> None:
    assert switchboard("tls", "ca", "--dir", "certs", cwd=tmp_path).returncode == 0
    made = switchboard(
        "tls", "cert", "--dir", "certs", "--name", "user", "--san", "127.0.0.1", cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    assert "certs/user.pem" in made.stdout
    key = tmp_path / "certs/user-key.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    again = switchboard("tls", "cert", "--dir", "certs", "--name", "user", cwd=tmp_path)
    assert again.returncode == 2 and "exists: remove it first" in again.stderr
    no_ca = switchboard("tls", "cert", "--dir", "empty", "--name", "x", cwd=tmp_path)
    assert no_ca.returncode == 2 and "run `switchboard tls ca --dir empty` first" in no_ca.stderr


async def test_grpcurl_calls_a_service_over_mtls_with_them(tmp_path: Path, grpcurl: Path) -> None:
    certs = tmp_path / "certs"
    switchboard("tls", "ca", "--dir", str(certs), cwd=REPO)
    switchboard(
        "tls", "cert", "--dir", str(certs), "--name", "user", "--san", "127.0.0.1", cwd=REPO
    )
    switchboard("tls", "cert", "--dir", str(certs), "--name", "operator", cwd=REPO)
    ca, cert, key = certs / "switchboard-ca.pem", certs / "user.pem", certs / "user-key.pem"
    async with Launcher(tmp_path) as launch:
        user = await launch.start(
            "services.user",
            *("--data-dir", str(tmp_path / "data")),
            *("--tls-cert", str(cert), "--tls-key", str(key), "--tls-client-ca", str(ca)),
        )
        tls = ("-cacert", str(ca))
        client = ("-cert", str(certs / "operator.pem"), "-key", str(certs / "operator-key.pem"))
        served = call(grpcurl, *tls, *client, user.address, HEALTH)
        assert served.returncode == 0 and '"status": "SERVING"' in served.stdout, served.stderr
        refused = call(grpcurl, *tls, user.address, HEALTH)  # no client certificate
        assert refused.returncode != 0
        plaintext = call(grpcurl, "-plaintext", user.address, HEALTH)
        assert plaintext.returncode != 0
