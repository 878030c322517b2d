"""TLS matrix against a real user-service process with mTLS on, and grpcurl over mTLS.

Refused - the handshake fails, no call reaches the service (UNAVAILABLE):
a plaintext client; a TLS client without a client certificate; a client
certificate from a CA the server does not trust; a client that does not trust
the server's CA; a client expecting another host name than the certificate
names (both ways round: wrong expected name, certificate for another host).
Accepted: the right CA, a client certificate, the right name - from Python
and from grpcurl with ``-cacert/-cert/-key`` (the command line the README shows).
Plaintext garbage on the TLS port is refused at once, and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from harness import REPO, Launcher, Process
from tests.reliability._support.garbage import probes, send_garbage
from tests.security._pki import Pki

pytestmark = pytest.mark.e2e

GRPCURL = REPO / ".tools" / "bin" / "grpcurl"


async def health(address: str, credentials: grpc.ChannelCredentials | None, **options: str) -> str:
    """``SERVING`` or the status code name of a health check over these credentials."""
    channel_options = [(f"grpc.{key}", value) for key, value in options.items()]
    channel = (
        grpc.aio.insecure_channel(address)
        if credentials is None
        else grpc.aio.secure_channel(address, credentials, options=channel_options)
    )
    async with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        except grpc.aio.AioRpcError as err:
            return str(err.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki.create(tmp_path / "pki")


@pytest.fixture
async def user(launcher: Launcher, pki: Pki, tmp_path: Path) -> Process:
    return await launcher.start(
        "services.user", "--data-dir", str(tmp_path / "user"), *pki.server_flags()
    )


async def test_only_a_trusted_client_with_the_right_name_gets_in(pki: Pki, user: Process) -> None:
    client = pki.client("tester")
    refused = {
        "plaintext": await health(user.address, None),
        "no client certificate": await health(user.address, pki.credentials()),
        "client certificate of a wrong CA": await health(
            user.address, pki.credentials(pki.stranger)
        ),
        "server not trusted (wrong CA)": await health(
            user.address, pki.credentials(client, trust=pki.other_ca)
        ),
        "wrong host name": await health(
            user.address, pki.credentials(client), ssl_target_name_override="wrong.example"
        ),
    }
    assert refused == dict.fromkeys(refused, "UNAVAILABLE")
    assert await health(user.address, pki.credentials(client)) == "SERVING"
    assert (
        await health(user.address, pki.credentials(client), ssl_target_name_override="localhost")
        == "SERVING"
    )
    assert user.running and "Traceback" not in user.log()


async def test_a_certificate_for_another_host_is_refused(
    launcher: Launcher, pki: Pki, tmp_path: Path
) -> None:
    elsewhere = pki.server_for("elsewhere.example")
    registry = await launcher.start("registry", *pki.server_flags(elsewhere, mtls=False))
    assert await health(registry.address, pki.credentials()) == "UNAVAILABLE"
    assert (
        await health(
            registry.address, pki.credentials(), ssl_target_name_override="elsewhere.example"
        )
        == "SERVING"
    )


async def test_garbage_on_the_tls_port_is_refused(pki: Pki, user: Process) -> None:
    """Plaintext bytes on a TLS port: the server hangs up at once and keeps serving."""
    for name, payload in probes().items():
        if name == "TLS ClientHello":
            continue  # a real handshake: not garbage on this port
        answer, took = await send_garbage(user.port, payload)
        assert not answer.startswith(b"HTTP/"), name
        assert took < 1.0, f"{name}: refused after {took:.2f} s"
    assert await health(user.address, pki.credentials(pki.client("after"))) == "SERVING"
    assert user.running and "Traceback" not in user.log()


def grpcurl_path() -> Path:
    """The pinned grpcurl, installed on first use by the Makefile target."""
    if not GRPCURL.exists():
        subprocess.run(["make", "-s", "tools-grpcurl"], cwd=REPO, check=True, timeout=600)
    return GRPCURL


async def grpcurl(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(grpcurl_path()),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "HOME": os.environ.get("HOME", "/tmp")},
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
    return await process.wait(), output.decode()


def tls_flags(pki: Pki, client_cert: bool = True) -> Sequence[str]:
    flags = ["-cacert", str(pki.ca.cert)]
    if client_cert:
        client = pki.client("grpcurl")
        flags += ["-cert", str(client.cert), "-key", str(client.key)]
    return flags


async def test_grpcurl_works_over_mtls_and_only_so(pki: Pki, user: Process) -> None:
    code, listed = await grpcurl(*tls_flags(pki), user.address, "list")
    assert code == 0, listed
    assert "switchboard.user.v1.UserService" in listed.split()
    body = json.dumps({"user": {"email": "curl@example.com", "displayName": "Curl"}})
    code, created = await grpcurl(
        *tls_flags(pki), "-d", body, user.address, "switchboard.user.v1.UserService/CreateUser"
    )
    assert code == 0, created
    assert json.loads(created)["user"]["email"] == "curl@example.com"
    for refused in (
        ["-plaintext", user.address, "list"],
        [*tls_flags(pki, client_cert=False), user.address, "list"],
        [*tls_flags(pki), "-servername", "wrong.example", user.address, "list"],
    ):
        code, output = await grpcurl(*refused)
        assert code != 0, f"grpcurl {' '.join(refused)} succeeded: {output}"
