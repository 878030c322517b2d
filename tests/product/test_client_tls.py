"""Service-to-service TLS: the product service calls the user service over mTLS.

The user service requires a client certificate (``--tls-client-ca``); the
product service presents one with ``--client-tls-ca/--client-tls-cert/--client-tls-key``
(the one TLS option set of all its outgoing calls). Real processes.
"""

from __future__ import annotations

from pathlib import Path

import grpc.aio
import pytest

from harness import Process, StartProcess
from services.runtime import errors as e
from switchboard.product.v1 import product_service_pb2 as pb
from switchboard.product.v1 import product_service_pb2_grpc
from switchboard.user.v1 import user_pb2, user_service_pb2, user_service_pb2_grpc
from tests._support import failure
from tests.product._support import WAIT, new_product
from tests.runtime._certs import Pair, make_pki

pytestmark = pytest.mark.e2e


async def _user_over_mtls(start: StartProcess, tmp_path: Path) -> tuple[Process, Pair, Pair]:
    """A user service answering only clients with a certificate of its CA: (process, ca, client)."""
    (tmp_path / "pki").mkdir()
    ca, server, client = make_pki(tmp_path / "pki")
    flags = ("--tls-cert", str(server.cert), "--tls-key", str(server.key),
             "--tls-client-ca", str(ca.cert))  # fmt: skip
    user = await start("services.user", "--data-dir", str(tmp_path / "user"), *flags)
    return user, ca, client


async def _seller(user: Process, ca: Pair, client: Pair) -> str:
    credentials = grpc.ssl_channel_credentials(
        ca.cert.read_bytes(), client.key.read_bytes(), client.cert.read_bytes()
    )
    async with grpc.aio.secure_channel(user.address, credentials) as channel:
        stub = user_service_pb2_grpc.UserServiceStub(channel)
        seller = user_pb2.User(email="seller@example.com", display_name="Seller")
        request = user_service_pb2.CreateUserRequest(user=seller)
        return (await stub.CreateUser(request, timeout=WAIT)).user.id


async def _create_product(product: Process, seller_id: str) -> pb.CreateProductResponse:
    async with grpc.aio.insecure_channel(product.address) as channel:
        stub = product_service_pb2_grpc.ProductServiceStub(channel)
        request = pb.CreateProductRequest(product=new_product(seller_id=seller_id))
        return await stub.CreateProduct(request, timeout=WAIT)


async def test_the_seller_check_goes_over_mtls_with_the_client_flags(
    start_process: StartProcess, tmp_path: Path
) -> None:
    user, ca, client = await _user_over_mtls(start_process, tmp_path)
    seller = await _seller(user, ca, client)
    flags = ("--client-tls-ca", str(ca.cert), "--client-tls-cert", str(client.cert),
             "--client-tls-key", str(client.key))  # fmt: skip
    env = {"SWITCHBOARD_ADDRESSES_USER": user.address}
    product = await start_process(
        "services.product", "--data-dir", str(tmp_path / "p"), *flags, env=env
    )
    created = await _create_product(product, seller)
    assert created.product.seller_id == seller


async def test_the_client_tls_settings_also_come_from_the_environment(
    start_process: StartProcess, tmp_path: Path
) -> None:
    user, ca, client = await _user_over_mtls(start_process, tmp_path)
    seller = await _seller(user, ca, client)
    env = {
        "SWITCHBOARD_ADDRESSES_USER": user.address,
        "SWITCHBOARD_CLIENT_TLS_CA": str(ca.cert),
        "SWITCHBOARD_CLIENT_TLS_CERT": str(client.cert),
        "SWITCHBOARD_CLIENT_TLS_KEY": str(client.key),
    }
    product = await start_process("services.product", "--data-dir", str(tmp_path / "p"), env=env)
    assert (await _create_product(product, seller)).product.seller_id == seller


async def test_without_a_client_certificate_the_seller_check_cannot_be_made(
    start_process: StartProcess, tmp_path: Path
) -> None:
    user, ca, client = await _user_over_mtls(start_process, tmp_path)
    seller = await _seller(user, ca, client)
    env = {"SWITCHBOARD_ADDRESSES_USER": user.address, "SWITCHBOARD_CLIENT_TIMEOUT_S": "1"}
    flags = ("--data-dir", str(tmp_path / "p"), "--client-tls-ca", str(ca.cert))
    product = await start_process("services.product", *flags, env=env)
    refused = await failure(_create_product(product, seller))
    assert isinstance(refused, e.Unavailable | e.DeadlineExceeded), refused
