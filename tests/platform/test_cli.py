"""The ``switchboard`` operator verbs as a person runs them, against a platform from ``make run``.

Exit status: 0 ok, 1 registry unreachable, 2 bad usage; errors are one line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import jwt
import pytest

from harness import REPO, SWITCHBOARD, Launcher, Platform, free_port, running_platform
from services.platform import format_table
from services.platform.cli import main
from services.runtime.auth import ensure_dev_secret, read_secret
from switchboard.registry.v1 import instance_pb2
from switchboard.registry.v1 import registry_service_pb2 as rs
from switchboard.registry.v1 import registry_service_pb2_grpc as rs_grpc
from tests.runtime._certs import make_pki

pytestmark = pytest.mark.e2e

TIMEOUT_S = 20.0


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(tmp_path_factory.mktemp("cli")) as running:
        yield running


def switchboard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    return subprocess.run(
        [SWITCHBOARD, *args],
        cwd=REPO,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def register(platform: Platform, service: str, instance_id: str, port: int) -> str:
    """Register an instance directly (as an agent would); its lease id."""
    with grpc.insecure_channel(platform.ports.address("registry")) as channel:
        instance = instance_pb2.Instance(
            service=service, instance_id=instance_id, address=f"127.0.0.1:{port}", version="9.9"
        )
        reply = rs_grpc.RegistryServiceStub(channel).Register(
            rs.RegisterRequest(instance=instance), timeout=5
        )
    return str(reply.lease_id)


def deregister(platform: Platform, lease_id: str) -> None:
    with grpc.insecure_channel(platform.ports.address("registry")) as channel:
        stub = rs_grpc.RegistryServiceStub(channel)
        stub.Deregister(rs.DeregisterRequest(lease_id=lease_id), timeout=5)


def dead_port() -> int:
    """A port nothing listens on (bound and released)."""
    return free_port()


def test_services_lists_each_service_once(platform: Platform) -> None:
    result = switchboard("services", "--registry", platform.ports.address("registry"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["SERVICE", "INSTANCES", "product", "1", "user", "1"]


def test_without_a_registry_flag_the_platform_files_registry_is_used(platform: Platform) -> None:
    result = switchboard("services", env={"REGISTRY_PORT": str(platform.ports.registry)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["SERVICE", "INSTANCES"] and "user" in result.stdout


def test_instances_shows_health_per_instance_with_the_registry_from_the_environment(
    platform: Platform,
) -> None:
    lease = register(platform, "user", "user-ghost", dead_port())
    try:
        env = {"SWITCHBOARD_REGISTRY": platform.ports.address("registry")}
        result = switchboard("instances", "user", "--health-timeout-s", "0.5", env=env)
    finally:
        deregister(platform, lease)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["SERVICE", "INSTANCE", "ADDRESS", "VERSION", "RENEWED", "HEALTH"]
    rows = {line.split()[1]: line.split() for line in lines[1:]}
    assert len(rows) == 2 and all(row[0] == "user" for row in rows.values())
    assert rows["user-ghost"][3:] and rows["user-ghost"][3] == "9.9"
    assert rows["user-ghost"][5] == "UNAVAILABLE"
    (real,) = (row for name, row in rows.items() if name != "user-ghost")
    assert real[2] == platform.ports.address("user") and real[5] == "SERVING"


def test_watch_prints_one_line_per_change_until_ctrl_c(
    platform: Platform, sync_launcher: Launcher
) -> None:
    registry = platform.ports.address("registry")
    argv = [SWITCHBOARD, "watch", "product", "--registry", registry]
    watch = sync_launcher.run_sync("watch", argv, listening=False)  # killed at teardown
    watch.wait_output_sync("SNAPSHOT product: 1 instance(s)", TIMEOUT_S)
    lease = register(platform, "product", "product-extra", dead_port())
    watch.wait_output_sync("ADDED    product product-extra", TIMEOUT_S)
    deregister(platform, lease)
    watch.wait_output_sync("REMOVED  product product-extra", TIMEOUT_S)
    watch.signal(signal.SIGINT)
    assert watch.wait_exit_sync(TIMEOUT_S) == 0, watch.log()
    lines = watch.output().splitlines()
    assert len(lines) == 3 and all(line.startswith("rev ") for line in lines), lines


def test_the_tls_flags_reach_an_mtls_registry(tmp_path: Path, sync_launcher: Launcher) -> None:
    ca, server, client = make_pki(tmp_path)
    port = free_port()
    tls = ("--tls-cert", str(server.cert), "--tls-key", str(server.key))
    sync_launcher.prepare("registry", *tls, "--tls-client-ca", str(ca.cert)).start_sync(port)
    address = ("--registry", f"127.0.0.1:{port}")
    plaintext = switchboard("services", *address)
    assert plaintext.returncode == 1, "a TLS registry does not answer plaintext"
    mtls = ("--registry-ca", str(ca.cert), "--registry-cert", str(client.cert))
    result = switchboard("services", *address, *mtls, "--registry-key", str(client.key))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["SERVICE", "INSTANCES"]


def test_an_unreachable_registry_is_one_line_and_exit_1() -> None:
    result = switchboard("services", "--registry", f"127.0.0.1:{dead_port()}")
    assert result.returncode == 1
    assert result.stderr.startswith("switchboard services: registry 127.0.0.1:")
    assert result.stderr.count("\n") == 1 and "pass --registry" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["services", "--health-timeout-s", "1"],  # a flag of `instances` only
        ["watch"],
        ["instances", "--health-timeout-s", "0", "--registry", "127.0.0.1:1"],
        ["bogus"],
    ],
)
def test_bad_usage_exits_2(args: list[str]) -> None:
    result = switchboard(*args)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_each_verb_shows_only_its_own_flags() -> None:
    services = switchboard("services", "-h").stdout
    instances = switchboard("instances", "-h").stdout
    run = switchboard("run", "-h").stdout
    assert "--registry" in services and "--health-timeout-s" not in services
    assert "--health-timeout-s" in instances
    assert "--file" in run and "--registry" not in run


def test_format_table() -> None:
    assert format_table(["A", "LONG"], [["xyz", "1"]]) == "A    LONG\nxyz  1"


def test_token_mints_a_development_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "dev-secret"
    ensure_dev_secret(secret)
    args = ["--subject", "alice", "--scope", "users:read", "--secret-file", str(secret)]
    assert main(["token", *args, "--issuer", "dev", "--audience", "switchboard"], env={}) == 0
    token = capsys.readouterr().out.strip()
    claims = jwt.decode(token, read_secret(secret), algorithms=["HS256"], audience="switchboard")
    assert (claims["sub"], claims["iss"]) == ("alice", "dev")
    assert main(["token", "--subject", "alice"], env={}) == 2  # nothing to sign with
    assert "give --auth POLICY" in capsys.readouterr().err


def test_xds_bootstrap_prints_the_file_grpc_reads(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["xds-bootstrap", "--registry", "127.0.0.1:50051"], env={}) == 0
    server = json.loads(capsys.readouterr().out)["xds_servers"][0]
    assert server["server_uri"] == "127.0.0.1:50051"
    assert server["channel_creds"] == [{"type": "insecure"}]
    assert main(["xds-bootstrap", "--registry", "r:1", "--cert-file", "c.pem"], env={}) == 2


def test_instances_checks_health_over_the_registrys_tls(
    tmp_path: Path, sync_launcher: Launcher
) -> None:
    """Instances of a TLS platform serve TLS: the health check dials them as the registry."""
    ca, server, _client = make_pki(tmp_path)
    port = free_port()
    tls = ("--tls-cert", str(server.cert), "--tls-key", str(server.key))
    sync_launcher.prepare("registry", *tls).start_sync(port)
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert.read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        # The registry itself stands in for a TLS instance: it serves grpc.health.v1 too.
        instance = instance_pb2.Instance(
            service="echo", instance_id="echo-1", address=f"127.0.0.1:{port}"
        )
        stub = rs_grpc.RegistryServiceStub(channel)
        stub.Register(rs.RegisterRequest(instance=instance), timeout=TIMEOUT_S)
    address = ("--registry", f"127.0.0.1:{port}", "--registry-ca", str(ca.cert))
    result = switchboard("instances", "echo", *address)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[-1] == "SERVING", result.stdout
