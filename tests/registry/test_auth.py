"""Write authorization: bearer token on writes, open reads, mTLS certificate → service."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from registry import RegistrySettings
from services.runtime import errors as e
from switchboard.registry.v1 import registry_service_pb2 as rs
from switchboard.registry.v1 import registry_service_pb2_grpc as rs_grpc
from tests._support import failure
from tests.registry._support import WAIT, MakeRegistry, Registry, read, register_request, state

TOKEN = "s3cret-token-0123456789"
GOOD = (("authorization", f"Bearer {TOKEN}"),)


@pytest.fixture
async def guarded(make_registry: MakeRegistry) -> Registry:
    return await make_registry(RegistrySettings(token=TOKEN))


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ((), "TOKEN_MISSING"),
        ((("authorization", "Bearer wrong-token"),), "TOKEN_INVALID"),
        ((("authorization", f"Bearer {TOKEN}x"),), "TOKEN_INVALID"),
        ((("authorization", f"Basic {TOKEN}"),), "TOKEN_INVALID"),
        ((("authorization", TOKEN),), "TOKEN_INVALID"),
        ((("authorization", "Bearer"),), "TOKEN_INVALID"),
        ((("x-authorization", f"Bearer {TOKEN}"),), "TOKEN_MISSING"),
        ((("token", TOKEN),), "TOKEN_MISSING"),
        ((("authorization", f"Bearer {TOKEN}"), ("authorization", "Bearer x")), "TOKEN_INVALID"),
    ],
)
async def test_writes_without_the_token_are_unauthenticated(
    guarded: Registry, metadata: tuple[tuple[str, str], ...], reason: str
) -> None:
    stub = guarded.stub
    lease = await stub.Register(register_request(instance_id="kept"), metadata=GOOD)
    before = await state(stub)
    calls: list[Awaitable[Any]] = [
        stub.Register(register_request(), metadata=metadata),
        stub.Heartbeat(rs.HeartbeatRequest(lease_id=lease.lease_id), metadata=metadata),
        stub.Deregister(rs.DeregisterRequest(lease_id=lease.lease_id), metadata=metadata),
        stub.Heartbeat(rs.HeartbeatRequest(lease_id="bad lease!"), metadata=metadata),
    ]
    for call in calls:
        error = await failure(call)
        assert isinstance(error, e.Unauthenticated) and error.reason == reason
        assert TOKEN not in error.message
    stream = stub.KeepAlive(metadata=metadata)
    with contextlib.suppress(grpc.aio.AioRpcError):  # the server may end the stream first
        await stream.write(rs.KeepAliveRequest(lease_id=lease.lease_id))
    assert isinstance(await failure(stream.read()), e.Unauthenticated)
    assert await state(stub) == before


async def test_writes_with_the_token_succeed(guarded: Registry) -> None:
    stub = guarded.stub
    lease = await stub.Register(register_request(), metadata=GOOD)
    lower = (("authorization", f"bearer {TOKEN}"),)  # the scheme is case-insensitive
    await stub.Heartbeat(rs.HeartbeatRequest(lease_id=lease.lease_id), metadata=lower)
    stream = stub.KeepAlive(metadata=GOOD)
    await stream.write(rs.KeepAliveRequest(lease_id=lease.lease_id))
    answer = await stream.read()
    assert isinstance(answer, rs.KeepAliveResponse) and answer.lease_id == lease.lease_id
    await stream.done_writing()
    await stub.Deregister(rs.DeregisterRequest(lease_id=lease.lease_id), metadata=GOOD)


async def test_reads_stay_open(guarded: Registry) -> None:
    stub = guarded.stub
    await stub.Register(register_request(), metadata=GOOD)
    assert len((await stub.Resolve(rs.ResolveRequest(service="user"))).instances) == 1
    assert len((await stub.ListServices(rs.ListServicesRequest())).services) == 1
    watch = stub.Watch(rs.WatchRequest(service="user"))
    assert len((await read(watch)).snapshot.instances) == 1
    watch.cancel()


# --- mTLS: a certificate may register only its own service -----------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    sans: list[x509.GeneralName],
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class _Pki:
    """A throwaway CA, a server certificate for 127.0.0.1 and client certificates."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca_key = _key()
        self.ca = _cert("test-ca", self.ca_key, None, [])
        self.ca_path = self._write("ca.pem", _pem(self.ca))
        server_key = _key()
        sans: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.DNSName("localhost"),
        ]
        server = _cert("registry", server_key, (self.ca, self.ca_key), sans)
        self.server_cert = self._write("server.pem", _pem(server))
        self.server_key = self._write("server.key", _pem_key(server_key))

    def _write(self, name: str, data: bytes) -> Path:
        path = self.directory / name
        path.write_bytes(data)
        return path

    def client(self, common_name: str, sans: list[str]) -> grpc.ChannelCredentials:
        key = _key()
        names: list[x509.GeneralName] = [x509.DNSName(s) for s in sans]
        cert = _cert(common_name, key, (self.ca, self.ca_key), names)
        return grpc.ssl_channel_credentials(
            root_certificates=_pem(self.ca),
            private_key=_pem_key(key),
            certificate_chain=_pem(cert),
        )


async def _register_over_mtls(port: int, credentials: grpc.ChannelCredentials, service: str) -> Any:
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        stub = rs_grpc.RegistryServiceStub(channel)
        return await stub.Register(register_request(service=service), timeout=WAIT)


async def test_mtls_binds_a_certificate_to_its_service(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    pki = _Pki(tmp_path)
    registry = await make_registry(
        tls_cert=pki.server_cert, tls_key=pki.server_key, tls_client_ca=pki.ca_path
    )
    by_cn = pki.client("user", [])
    by_san = pki.client("some-host", ["product"])
    assert (await _register_over_mtls(registry.port, by_cn, "user")).lease_id
    assert (await _register_over_mtls(registry.port, by_san, "product")).lease_id
    for credentials, service in ((by_cn, "product"), (by_san, "user")):
        try:
            await _register_over_mtls(registry.port, credentials, service)
        except grpc.aio.AioRpcError as err:
            error = e.from_rpc_error(err)
            assert isinstance(error, e.PermissionDenied)
            assert error.reason == "CERTIFICATE_SERVICE_MISMATCH"
        else:
            raise AssertionError(f"registered {service!r} with another service's certificate")
    services, _ = await registry.store.list_services()
    assert sum(s.instance_count for s in services) == 2
