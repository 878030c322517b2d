"""``make run-cluster``: 3 etcd, 2 registry replicas, PostgreSQL, 2 user + 2 product instances.

The cluster's own platform file is started by ``switchboard run --file`` (as the
make target does) with auth and mutual TLS on, its ports moved to free ones (the
only change to the file). Then, through the Switchboard client as an operator
would call it: every instance is registered; a user created through one user
instance is read through the other; a Watch on one instance sees a change made
through the other; SIGKILL of one user instance fails no idempotent call.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from harness import REPO, Launcher, Platform, free_ports, platform_ports, start_platform
from services.runtime import Client, ClientConfig, RegistryClient, SwitchboardError
from services.user.client import UserClient

pytestmark = pytest.mark.e2e

CLUSTER_FILE = REPO / "switchboard.cluster.toml"
UP_TIMEOUT_S = 180.0
LOAD_S = 6.0


def moved_cluster_file(directory: Path) -> Path:
    """The cluster file with every port it names moved to a free one; nothing else changes."""
    text = CLUSTER_FILE.read_text()
    old_ports = sorted(set(re.findall(r"\b(5\d{4})\b", text)))
    # Probed together (distinct), replaced in one pass (a new port may look like an old one).
    moved = dict(zip(old_ports, map(str, free_ports(len(old_ports))), strict=True))
    text = re.sub(r"\b(5\d{4})\b", lambda m: moved[m.group(1)], text)
    policy = REPO / "deploy/auth/policy.example.toml"
    text = text.replace('"deploy/auth/policy.example.toml"', f'"{policy}"')
    path = directory / "switchboard.cluster.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    workdir = tmp_path_factory.mktemp("cluster")
    for folder in (workdir, *workdir.parents):  # PostgreSQL's own user must reach its data
        if folder == Path("/"):
            break
        folder.chmod(folder.stat().st_mode | 0o055)
    data = workdir / "data"
    data.mkdir()
    path = moved_cluster_file(workdir)
    env = {"AUTH": "1", "TLS": "1"}
    with Launcher(workdir) as launcher:
        args = ("--file", str(path))  # its ports are free already: no *_PORT overrides
        platform = start_platform(
            launcher, data, platform_ports(), env, args=args, override_ports=False
        )
        try:
            platform.wait_for("switchboard is up", UP_TIMEOUT_S)
            yield platform
        finally:
            platform.stop(60)


def client_env(platform: Platform, **extra: str) -> dict[str, str]:
    """An operator's settings: the banner's token, the operator certificate, the registries."""
    output = platform.output()
    token = re.search(r"^export TOKEN=(\S+)$", output, re.MULTILINE)
    registry = re.search(r"grpcurl .* (\S+:\d+) switchboard\.registry", output)
    assert token and registry, output
    tls = platform.data_dir / "tls"
    files = {"CA": "switchboard-ca.pem", "CERT": "operator.pem", "KEY": "operator-key.pem"}
    env = {f"SWITCHBOARD_CLIENT_TLS_{k}": str(tls / f) for k, f in files.items()}
    env |= {f"SWITCHBOARD_REGISTRY_{k}": str(tls / f) for k, f in files.items()}
    env |= {"SWITCHBOARD_REGISTRY_TLS": "1", "SWITCHBOARD_REGISTRY": registry[1]}
    env |= {"SWITCHBOARD_TOKEN": token[1], "SWITCHBOARD_AUTH_TOKEN": token[1]}
    return {**env, **extra}


def pinned(platform: Platform, service: str, address: str) -> Client:
    """A client that calls ``service`` only at ``address`` (no discovery)."""
    env = client_env(platform, SWITCHBOARD_REGISTRY="")
    env[f"SWITCHBOARD_ADDRESSES_{service.upper()}"] = address
    return Client(ClientConfig.from_env(env))


@pytest.fixture
async def client(cluster: Platform) -> AsyncIterator[Client]:
    async with Client(ClientConfig.from_env(client_env(cluster))) as c:
        yield c


async def addresses(client: Client, service: str) -> list[str]:
    registry = RegistryClient(await client.registry())
    return sorted(i.address for i in (await registry.resolve(service)).instances)


async def test_every_service_has_its_two_instances(client: Client) -> None:
    assert len(await addresses(client, "user")) == 2
    assert len(await addresses(client, "product")) == 2


async def test_written_through_one_instance_read_through_the_other(
    cluster: Platform, client: Client
) -> None:
    first, second = await addresses(client, "user")
    async with pinned(cluster, "user", first) as one, pinned(cluster, "user", second) as two:
        made = await (await UserClient.connect(one)).create_user(
            email="shared@example.com", display_name="Shared"
        )
        seen = await (await UserClient.connect(two)).get_user(made.id)
    assert (seen.id, seen.email) == (made.id, "shared@example.com")


async def test_a_watch_on_one_instance_sees_a_change_made_through_the_other(
    cluster: Platform, client: Client
) -> None:
    first, second = await addresses(client, "user")
    async with pinned(cluster, "user", first) as one, pinned(cluster, "user", second) as two:
        stream = (await UserClient.connect(one)).watch_users(0, timeout_s=30)
        made = await (await UserClient.connect(two)).create_user(
            email="watched@example.com", display_name="Watched"
        )
        async with asyncio.timeout(20):
            async for event in stream:
                if event.user.id == made.id:
                    break


async def test_a_watch_resumes_on_the_other_instance_after_a_sigkill_with_no_gap(
    cluster: Platform, client: Client
) -> None:
    first, second = await addresses(client, "user")
    async with pinned(cluster, "user", first) as one, pinned(cluster, "user", second) as two:
        writer = await UserClient.connect(two)
        before = [
            await writer.create_user(email=f"gap-{i}@example.com", display_name="G")
            for i in range(3)
        ]
        revisions = await _revisions_until(await UserClient.connect(one), 0, before[-1].id)
        os.kill(_pid_listening_on(int(first.rpartition(":")[2])), signal.SIGKILL)
        after = [
            await writer.create_user(email=f"gap-{i}@example.com", display_name="G")
            for i in range(3, 6)
        ]
        revisions += await _revisions_until(writer, revisions[-1], after[-1].id)
    assert revisions == list(range(revisions[0], revisions[0] + len(revisions))), revisions


async def _revisions_until(users: UserClient, start: int, last_id: str) -> list[int]:
    """The revisions a Watch from ``start`` delivers, up to the event creating ``last_id``."""
    revisions = []
    async with asyncio.timeout(30):
        async for event in users.watch_users(start, timeout_s=30):
            revisions.append(event.revision)
            if event.user.id == last_id:
                return revisions
    raise AssertionError(f"the watch ended before {last_id}")


async def test_sigkill_of_one_user_instance_fails_no_idempotent_call(
    cluster: Platform, client: Client
) -> None:
    users = await UserClient.connect(client)
    made = await users.create_user(email="steady@example.com", display_name="Steady")
    victim = (await addresses(client, "user"))[0]
    pid = _pid_listening_on(int(victim.rpartition(":")[2]))
    failures, calls = 0, 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LOAD_S
    killed = False
    while loop.time() < deadline:
        if not killed and loop.time() > deadline - LOAD_S + 1.0:
            os.kill(pid, signal.SIGKILL)
            killed = True
        try:
            await users.get_user(made.id, timeout_s=5)
        except SwitchboardError:  # counted: the assertion below names the count
            failures += 1
        calls += 1
    assert killed and calls > 10
    assert failures == 0, f"{failures} of {calls} GetUser calls failed after the SIGKILL"


def _pid_listening_on(port: int, timeout_s: float = 30.0) -> int:
    """The pid of the process listening on 127.0.0.1:``port`` (waits for a restarted one)."""
    deadline = time.monotonic() + timeout_s
    while (inode := _listening_inode(port)) is None:
        assert time.monotonic() < deadline, f"nothing listens on port {port}"
        time.sleep(0.1)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        fds = Path(f"/proc/{pid}/fd")
        try:
            links = [os.readlink(fds / fd) for fd in os.listdir(fds)]
        except OSError:
            continue
        if f"socket:[{inode}]" in links:
            return int(pid)
    raise AssertionError(f"no process listens on port {port}")


def _listening_inode(port: int) -> str | None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rpartition(":")[2], 16) == port and fields[3] == "0A":
                return fields[9]
    return None
