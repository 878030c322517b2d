"""The development flow end to end, with real processes: secret, minted tokens, auth everywhere.

``python -m services.runtime.auth dev-secret`` writes a secret, ``... token`` mints
tokens, a registry and a user service run with ``--auth`` and the example policy;
the user service's agent registers with its own token (``SWITCHBOARD_TOKEN``), a
client with alice's token finds it through the registry and is answered, a
client without one is not. Bad auth settings stop a process with one line.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.runtime import Client, ClientConfig, RegistryConfig
from services.runtime.errors import NotFound, PermissionDenied, Unauthenticated
from services.user.client import UserClient
from tests.auth._support import EXAMPLE_POLICY
from tests.reliability._support.procs import REPO, Launcher
from tests.reliability._support.waits import eventually

pytestmark = pytest.mark.e2e


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.runtime.auth", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def mint(secret: Path, subject: str, *scopes: str) -> str:
    flags = [arg for scope in scopes for arg in ("--scope", scope)]
    done = cli("token", "--auth", str(EXAMPLE_POLICY), "--secret-file", str(secret),
               "--subject", subject, *flags)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
async def launcher(tmp_path: Path) -> AsyncIterator[Launcher]:
    async with Launcher(tmp_path) as launch:
        yield launch


async def test_dev_flow_with_auth_on_everywhere(launcher: Launcher, tmp_path: Path) -> None:
    secret = tmp_path / "auth" / "dev-secret"
    assert cli("dev-secret", str(secret)).returncode == 0
    first = secret.read_bytes()
    assert cli("dev-secret", str(secret)).returncode == 0 and secret.read_bytes() == first
    assert secret.stat().st_mode & 0o077 == 0
    auth = ("--auth", str(EXAMPLE_POLICY), "--auth-secret-file", str(secret))
    registry = await launcher.start("registry", *auth)
    agent_token = mint(secret, "user-service", "registry:write")
    user = await launcher.start(
        "services.user", *auth, "--data-dir", str(tmp_path / "data"),
        "--registry", registry.address, env={"SWITCHBOARD_TOKEN": agent_token},
    )  # fmt: skip
    alice = mint(secret, "alice", "users:read", "registry:read")
    config = ClientConfig(registry=RegistryConfig(addresses=(registry.address,)), token=alice)
    async with Client(config) as client:
        users = await UserClient.connect(client)
        # The agent registers right after the user service listens.
        await eventually(lambda: bool(users.conn.addresses), 10.0, "user found via registry")
        with pytest.raises(NotFound):
            await users.get_user("nobody")
        with pytest.raises(PermissionDenied):
            await users.delete_user("nobody")
    anonymous = ClientConfig(static={"user": (user.address,)})
    async with Client(anonymous) as client:
        with pytest.raises(Unauthenticated):
            await (await UserClient.connect(client)).get_user("nobody")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--auth", "/nonexistent/policy.toml"), "--auth '/nonexistent/policy.toml'"),
        (("--auth-secret-file", str(EXAMPLE_POLICY)), "need --auth"),
        (("--auth", str(EXAMPLE_POLICY), "--token", "s3cret"), "exclude each other"),
    ],
)
async def test_bad_auth_settings_exit_2_without_a_traceback(
    launcher: Launcher, args: tuple[str, ...], message: str
) -> None:
    proc = launcher.prepare("registry", *args)
    with pytest.raises(AssertionError, match="did not start"):
        await proc.start()
    assert await proc.wait_exit() == 2
    assert message in proc.log() and "Traceback" not in proc.log()
