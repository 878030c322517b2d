"""The development flow end to end, with real processes: secret, minted tokens, auth everywhere.

``python -m services.runtime.auth dev-secret`` writes a secret, ``... token`` mints
tokens, a registry and a user service run with ``--auth`` and the example policy;
the user service's agent registers with its own token (``SWITCHBOARD_TOKEN``), a
client with alice's token finds it through the registry and is answered, a
client without one is not. Bad auth settings stop a process with one line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from harness import REPO, Launcher
from services.product.client import ProductClient
from services.runtime import Client, ClientConfig, RegistryConfig
from services.runtime.auth import dev_auth
from services.runtime.errors import NotFound, PermissionDenied, Unauthenticated
from services.user.client import UserClient
from switchboard.product.v1 import product_pb2
from tests.auth._support import EXAMPLE_POLICY
from tests.reliability._support.waits import eventually

pytestmark = pytest.mark.e2e


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    return subprocess.run(
        [sys.executable, "-m", "services.runtime.auth", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
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
    """Registry, user and product as ``make run AUTH=1`` starts them (:func:`dev_auth`)."""
    secret = tmp_path / "auth" / "dev-secret"
    assert cli("dev-secret", str(secret)).returncode == 0
    first = secret.read_bytes()
    assert cli("dev-secret", str(secret)).returncode == 0 and secret.read_bytes() == first
    assert secret.stat().st_mode & 0o077 == 0
    dev = dev_auth(EXAMPLE_POLICY, secret)
    registry = await launcher.start("registry", env=dev.server_env())
    for name, module in (("user", "services.user"), ("product", "services.product")):
        await launcher.start(
            module, "--data-dir", str(tmp_path / name), "--registry", registry.address,
            env=dev.service_env(name),
        )  # fmt: skip
    alice = mint(secret, "alice", "users:read", "products:write", "registry:read")
    found_by = RegistryConfig((registry.address,))
    operator = ClientConfig(registry=found_by, token=dev.operator_token())
    async with Client(operator) as client:
        users = await UserClient.connect(client)
        await eventually(lambda: bool(users.conn.addresses), 10.0, "user found via registry")
        seller = await users.create_user(email="ada@example.com", display_name="Ada")
    as_alice = ClientConfig(registry=found_by, token=alice)
    async with Client(as_alice) as client:
        products = await ProductClient.connect(client)
        await eventually(lambda: bool(products.conn.addresses), 10.0, "product found")
        # product asks user whether the seller exists, with its own token
        lamp = await products.create_product(
            sku="LAMP-1", name="Lamp", price=product_pb2.Money(currency_code="EUR", amount_minor=1),
            stock=1, seller_id=seller.id,
        )  # fmt: skip
        with pytest.raises(PermissionDenied):  # alice is no admin
            await products.delete_product(lamp.id)
        users = await UserClient.connect(client)
        user_addresses = users.conn.addresses
        with pytest.raises(NotFound):
            await users.get_user("nobody")
        with pytest.raises(PermissionDenied):  # no users:write
            await users.create_user(email="eve@example.com", display_name="Eve")
    anonymous = ClientConfig(static={"user": user_addresses})
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


def test_token_without_a_key_is_one_line_exit_2() -> None:
    done = cli("token", "--subject", "alice")
    assert done.returncode == 2
    assert done.stderr.startswith("error: give --auth POLICY") and done.stderr.count("\n") == 1
