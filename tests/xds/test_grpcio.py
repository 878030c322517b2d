"""A plain grpcio client in its own process dials ``xds:///user`` against a real registry.

Real processes: a registry, three user instances (shared data dir), and
``grpcio_client.py`` (grpcio + generated stubs only, ``GRPC_XDS_BOOTSTRAP``
pointing at the registry). The servers' access logs tell which instance
answered each call (the client sends ``x-request-id: xds-<n>``).

Measured figures (failures while a killed instance is still listed, the time
until the endpoints push drops it, the time until a new instance gets calls) are
printed and written to ``xds-figures.json`` in the test's tmp dir; run with
``-s`` to see them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc.aio
import pytest

from envoy.config.endpoint.v3 import endpoint_pb2
from harness import REPO, Launcher, Process
from registry.xds import ENDPOINTS, bootstrap_json
from switchboard.user.v1 import user_pb2
from switchboard.user.v1 import user_service_pb2 as us
from switchboard.user.v1 import user_service_pb2_grpc as us_grpc
from tests.reliability._support.stack import resolve, start_stack
from tests.reliability._support.waits import eventually
from tests.runtime._certs import make_pki
from tests.xds._ads import AdsStream

pytestmark = pytest.mark.e2e

TTL_S = 2.0
CLIENT = Path(__file__).with_name("grpcio_client.py")
_SERVED = re.compile(r"request_id=(xds-\d+) ")


@dataclass
class Calls:
    """The client's call records: request id -> (code, start time)."""

    path: Path
    records: dict[str, tuple[str, float]] = field(default_factory=dict)

    def load(self) -> Calls:
        for line in self.path.read_text().splitlines():
            rid, code, started = line.split()
            self.records[rid] = (code, float(started))
        return self

    def failures(self, start: float, end: float = float("inf")) -> list[str]:
        return [
            f"{rid} {code}"
            for rid, (code, t) in self.records.items()
            if code != "OK" and start <= t < end
        ]

    def ok_after(self, start: float) -> int:
        return sum(1 for code, t in self.records.values() if code == "OK" and t >= start)


def served(proc: Process) -> set[str]:
    """The request ids of xDS client calls this instance answered."""
    return set(_SERVED.findall(proc.log()))


async def create_user(address: str) -> str:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = us_grpc.UserServiceStub(channel)
        answer = await stub.CreateUser(
            us.CreateUserRequest(
                user=user_pb2.User(email="ada@example.com", display_name="Ada"),
                request_id="xds-create-1",
            ),
            timeout=10,
        )
    return answer.user.id


async def start_client(
    bootstrap_text: str, tmp: Path, user_id: str
) -> tuple[asyncio.subprocess.Process, Calls]:
    """Start grpcio_client.py with a bootstrap holding ``bootstrap_text``."""
    bootstrap = tmp / "bootstrap.json"
    bootstrap.write_text(bootstrap_text)
    out = tmp / "calls.txt"
    out.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWITCHBOARD_", "GRPC_"))}
    env["GRPC_XDS_BOOTSTRAP"] = str(bootstrap)
    with (tmp / "client.log").open("ab") as log:  # the child keeps its own descriptor
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CLIENT),
            *("--target", "xds:///user", "--user-id", user_id, "--out", str(out)),
            cwd=REPO,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    return process, Calls(out)


async def stop_client(process: asyncio.subprocess.Process) -> None:
    assert process.stdin is not None
    process.stdin.close()
    try:
        await asyncio.wait_for(process.wait(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def endpoints_without(ads: AdsStream, address: str) -> float:
    """Read endpoints pushes until one lacks ``address``; return when it arrived."""
    while True:
        response = await ads.recv(TTL_S + 5)
        await ads.ack(response, ["user"])
        assignment = endpoint_pb2.ClusterLoadAssignment()
        assert response.resources[0].Unpack(assignment)
        listed = {
            f"{e.endpoint.address.socket_address.address}:"
            f"{e.endpoint.address.socket_address.port_value}"
            for locality in assignment.endpoints
            for e in locality.lb_endpoints
        }
        if address not in listed:
            return time.time()


async def test_grpcio_client_balances_survives_a_kill_and_finds_a_new_instance(
    launcher: Launcher, tmp_path: Path
) -> None:
    platform = await start_stack(launcher, tmp_path, users=3, ttl_s=TTL_S)
    user_id = await create_user(platform.users[0].address)
    bootstrap = bootstrap_json(platform.registry.address)
    client, calls = await start_client(bootstrap, tmp_path, user_id)
    figures: dict[str, float | int] = {}
    try:
        # 1. calls spread over all three instances
        await eventually(
            lambda: all(served(u) for u in platform.users), 30.0, "every instance gets calls"
        )

        # 2. SIGKILL one: the endpoints push drops it after its lease expires
        victim = platform.users[0]
        async with (
            grpc.aio.insecure_channel(platform.registry.address) as channel,
            AdsStream(channel) as ads,
        ):
            await ads.subscribe(ENDPOINTS, ["user"])
            killed_at = time.time()
            victim.kill()
            pushed_at = await endpoints_without(ads, victim.address)
        figures["kill_to_eds_push_s"] = round(pushed_at - killed_at, 3)
        assert victim.address not in await resolve(platform.registry.address, "user")
        assert pushed_at - killed_at <= TTL_S + 1.0

        # Calls go on; none fails once the push is out (1 s for the client to apply it).
        await asyncio.sleep(1.5)  # let calls run past the settle window (bounded, measured)
        settled = pushed_at + 1.0
        after = calls.load()
        figures["failures_kill_to_push"] = len(after.failures(killed_at, pushed_at))
        figures["failures_after_push"] = len(after.failures(pushed_at))
        assert after.failures(settled) == []
        assert after.ok_after(settled) > 0

        # 3. a fourth instance gets calls within 2 s of registering
        fourth = await platform.add_user()
        figures["new_instance_first_call_s"] = round(
            await eventually(lambda: bool(served(fourth)), 2.0, "the new instance gets calls"),
            3,
        )
    finally:
        await stop_client(client)
    calls = Calls(calls.path).load()
    figures["calls"] = len(calls.records)
    figures["failures_total"] = len(calls.failures(0.0))
    (tmp_path / "xds-figures.json").write_text(json.dumps(figures, indent=2))
    print(f"\nxDS grpcio figures: {json.dumps(figures)}")
    assert client.returncode == 0, (tmp_path / "client.log").read_text()[-3000:]


async def test_grpcio_client_reaches_a_tls_registry_with_the_bootstraps_channel_creds(
    launcher: Launcher, tmp_path: Path
) -> None:
    ca, server, _client = make_pki(tmp_path)
    registry = await launcher.start(
        "registry", "--tls-cert", str(server.cert), "--tls-key", str(server.key)
    )
    user = await launcher.start(
        "services.user",
        *("--data-dir", str(tmp_path / "user"), "--registry", registry.address),
        *("--registry-tls", "1", "--registry-ca", str(ca.cert)),
    )
    user_id = await create_user(user.address)
    bootstrap = bootstrap_json(registry.address, ca_file=ca.cert)
    assert '"type": "tls"' in bootstrap
    client, _calls = await start_client(bootstrap, tmp_path, user_id)
    try:
        await eventually(lambda: bool(served(user)), 30.0, "calls through a TLS registry")
    finally:
        await stop_client(client)
    assert client.returncode == 0, (tmp_path / "client.log").read_text()[-3000:]
