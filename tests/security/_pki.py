"""Test certificates, made fresh by each test run (never a committed key).

Builds on ``tests/runtime/_certs.make_pki`` (a CA, a server certificate for
127.0.0.1 and localhost, a client certificate) and issues more leaves from its
CA: client certificates naming a service, a server certificate for the wrong
host name. A second, unrelated CA stands for "a CA the server does not trust".

Example::

    pki = Pki.create(tmp_path)
    user = pki.client("user")                      # CN=user, signed by the CA
    stranger = pki.stranger                        # signed by another CA
    creds = pki.credentials(user)                  # grpc channel credentials
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.runtime._certs import Pair, make_pki

__all__ = ["Pair", "Pki", "issue"]


def issue(ca: Pair, directory: Path, stem: str, common_name: str, dns: Sequence[str] = ()) -> Pair:
    """A leaf certificate for ``common_name`` (and DNS ``dns`` names) signed by ``ca``.

    Example: ``issue(ca, tmp_path, "user", "user", dns=["user", "host-a"])``.
    """
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
    )
    if dns:
        names = x509.SubjectAlternativeName([x509.DNSName(name) for name in dns])
        builder = builder.add_extension(names, critical=False)
    pair = Pair(directory / f"{stem}.crt", directory / f"{stem}.key")
    pair.cert.write_bytes(
        builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    )
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pair


@dataclass(frozen=True)
class Pki:
    """A trusted CA with its server and client certificates, and an untrusted one."""

    directory: Path
    ca: Pair
    server: Pair
    client_cert: Pair
    other_ca: Pair
    stranger: Pair  # a client certificate from the other CA

    @classmethod
    def create(cls, directory: Path) -> Pki:
        trusted, untrusted = directory / "trusted", directory / "untrusted"
        trusted.mkdir(parents=True)
        untrusted.mkdir(parents=True)
        ca, server, client = make_pki(trusted)
        other_ca, _other_server, stranger = make_pki(untrusted)
        return cls(trusted, ca, server, client, other_ca, stranger)

    def client(self, common_name: str, dns: Sequence[str] = ()) -> Pair:
        """A client certificate signed by the trusted CA."""
        return issue(self.ca, self.directory, f"client-{common_name}-{len(dns)}", common_name, dns)

    def server_for(self, host: str) -> Pair:
        """A server certificate valid only for ``host`` (to test a host name mismatch)."""
        return issue(self.ca, self.directory, f"server-{host}", host, dns=[host])

    def credentials(
        self, client: Pair | None = None, *, trust: Pair | None = None
    ) -> grpc.ChannelCredentials:
        """Channel credentials trusting ``trust`` (default: the CA), presenting ``client``."""
        return grpc.ssl_channel_credentials(
            root_certificates=(trust or self.ca).cert.read_bytes(),
            private_key=client.key.read_bytes() if client else None,
            certificate_chain=client.cert.read_bytes() if client else None,
        )

    def server_flags(self, server: Pair | None = None, *, mtls: bool = True) -> tuple[str, ...]:
        """``--tls-cert/--tls-key`` (and ``--tls-client-ca`` for mTLS) for a service process."""
        pair = server or self.server
        flags = ("--tls-cert", str(pair.cert), "--tls-key", str(pair.key))
        return (*flags, "--tls-client-ca", str(self.ca.cert)) if mtls else flags
