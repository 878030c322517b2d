"""Service identities from mTLS certificates, under the example policy (in-process user server).

* product's certificate may call GetUser (past the gate: NOT_FOUND for a missing user)
  and may not call DeleteUser or CreateUser (PERMISSION_DENIED, PRINCIPAL_DENIED);
* a certificate the policy does not name is denied;
* a certificate from another CA is refused at the handshake (UNAVAILABLE, no call made);
* with a certificate *and* a bearer token, a bad token is still UNAUTHENTICATED.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import grpc.aio
import pytest

from harness import start_server
from services.runtime import Client, ClientConfig, ServerConfig
from services.runtime.errors import NotFound, PermissionDenied, from_rpc_error
from services.user import PAGE_TOKEN_SECRET, SqliteUserStore, user_service
from services.user.client import UserClient
from switchboard.user.v1 import user_pb2, user_service_pb2, user_service_pb2_grpc
from tests.auth._support import Keys, bearer
from tests.security._pki import Pair, Pki

WAIT = 5.0


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki.create(tmp_path / "pki")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteUserStore]:
    opened = SqliteUserStore.open(tmp_path / "data")
    yield opened
    opened.close()


@pytest.fixture
async def address(tmp_path: Path, pki: Pki, store: SqliteUserStore) -> AsyncIterator[str]:
    keys = Keys.create(tmp_path / "keys")
    config: ServerConfig = keys.server_config(
        tls_cert=pki.server.cert, tls_key=pki.server.key, tls_client_ca=pki.ca.cert
    )
    server = await start_server([user_service(store, store.db.secret(PAGE_TOKEN_SECRET))], config)
    yield server.address
    store.end_watches()
    await server.stop()


async def call(
    address: str,
    pki: Pki,
    client: Pair,
    method: str,
    request: object,
    md: tuple[tuple[str, str], ...] = (),
) -> tuple[grpc.StatusCode, str | None]:
    async with grpc.aio.secure_channel(address, pki.credentials(client)) as channel:
        stub = user_service_pb2_grpc.UserServiceStub(channel)
        try:
            await getattr(stub, method)(request, timeout=WAIT, metadata=md)
        except grpc.aio.AioRpcError as err:
            return err.code(), from_rpc_error(err).reason
    return grpc.StatusCode.OK, None


async def test_product_may_get_a_user(address: str, pki: Pki) -> None:
    code, _ = await call(
        address, pki, pki.client("product"), "GetUser", user_service_pb2.GetUserRequest(id="nobody")
    )
    assert code == grpc.StatusCode.NOT_FOUND  # past the gate: the user simply does not exist


async def test_product_may_not_delete_or_create_users(address: str, pki: Pki) -> None:
    product = pki.client("product")
    delete = user_service_pb2.DeleteUserRequest(id="nobody")
    assert await call(address, pki, product, "DeleteUser", delete) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "PRINCIPAL_DENIED",
    )
    create = user_service_pb2.CreateUserRequest(
        user=user_pb2.User(email="a@b.co", display_name="A")
    )
    assert (await call(address, pki, product, "CreateUser", create))[
        0
    ] == grpc.StatusCode.PERMISSION_DENIED


async def test_a_certificate_the_policy_does_not_name_is_denied(address: str, pki: Pki) -> None:
    code, reason = await call(
        address, pki, pki.client("billing"), "GetUser", user_service_pb2.GetUserRequest(id="x")
    )
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "PRINCIPAL_DENIED")


async def test_a_certificate_from_another_ca_is_refused_at_the_handshake(
    address: str, pki: Pki
) -> None:
    code, reason = await call(
        address, pki, pki.stranger, "GetUser", user_service_pb2.GetUserRequest(id="x")
    )
    # No ErrorInfo: the server never saw a call (the reason is just the code name).
    assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE")


async def test_a_bad_token_beside_a_good_certificate_is_unauthenticated(
    address: str, pki: Pki
) -> None:
    code, reason = await call(
        address,
        pki,
        pki.client("product"),
        "GetUser",
        user_service_pb2.GetUserRequest(id="x"),
        bearer("nope"),
    )
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")


async def test_the_client_presents_its_certificate_from_the_environment(
    address: str, pki: Pki
) -> None:
    """``SWITCHBOARD_CLIENT_TLS_*``: how a service calls another as itself."""
    product = pki.client("product")
    env = {
        "SWITCHBOARD_ADDRESSES_USER": address,
        "SWITCHBOARD_CLIENT_TLS_CA": str(pki.ca.cert),
        "SWITCHBOARD_CLIENT_TLS_CERT": str(product.cert),
        "SWITCHBOARD_CLIENT_TLS_KEY": str(product.key),
    }
    async with Client(ClientConfig.from_env(env)) as client:
        users = await UserClient.connect(client)
        with pytest.raises(NotFound):  # past the gate as "product"
            await users.get_user("nobody")
        with pytest.raises(PermissionDenied):
            await users.delete_user("nobody")
