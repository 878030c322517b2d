"""Certificates in one command, as ``consul tls ca create`` makes them.

``switchboard tls ca`` writes a private CA (``switchboard-ca.pem`` and its key);
``switchboard tls cert --name greeter --san 127.0.0.1 --san localhost`` writes a
certificate signed by it for a service, usable both as a server certificate and
as the service's client certificate under mTLS. Every name goes into the
subjectAltName (grpcurl, Go and Java refuse a certificate that names its host
only in the legacy Common Name); the Common Name is the service's name, which
is what the registry and the authorization policy read as its identity.
Keys are ECDSA P-256, written with mode 0600 and never overwritten.

Example::

    $ switchboard tls ca --dir certs
    $ switchboard tls cert --dir certs --name greeter --san 127.0.0.1 --san localhost
    $ python -m services.greeter --tls-cert certs/greeter.pem --tls-key certs/greeter-key.pem \\
          --tls-client-ca certs/switchboard-ca.pem
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CA_NAME", "DevPki", "TlsError", "Written", "development_pki", "make_ca", "make_cert"]

CA_NAME = "switchboard-ca"
_DAY = datetime.timedelta(days=1)


class TlsError(Exception):
    """A certificate cannot be made as asked; ``str(err)`` is one line naming the fix."""


@dataclass(frozen=True)
class Written:
    """The certificate and key files a command wrote."""

    cert: Path
    key: Path

    def summary(self) -> str:
        return f"wrote {self.cert} and {self.key} (private key, mode 0600)"


def make_ca(directory: Path, *, days: int = 3650) -> Written:
    """Write a new CA certificate and key into ``directory``; refuses to overwrite one."""
    written = _paths(directory, CA_NAME)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Switchboard development CA")])
    builder = _builder(name, name, key.public_key(), days).add_extension(
        x509.BasicConstraints(ca=True, path_length=0), critical=True
    )
    usage = _key_usage(cert_sign=True)
    cert = builder.add_extension(usage, critical=True).sign(key, hashes.SHA256())
    _write(written, cert, key)
    return written


def make_cert(directory: Path, name: str, sans: Sequence[str], *, days: int = 825) -> Written:
    """Write ``NAME.pem`` and ``NAME-key.pem`` signed by the CA in ``directory``."""
    if not name or "/" in name:
        raise TlsError(f"--name {name!r}: give the service's name, e.g. --name user")
    ca_cert, ca_key = _load_ca(directory)
    written = _paths(directory, name)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    builder = (
        _builder(subject, ca_cert.subject, key.public_key(), days)
        .add_extension(x509.SubjectAlternativeName(_alt_names([name, *sans])), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    _write(written, builder.sign(ca_key, hashes.SHA256()), key)
    return written


def _paths(directory: Path, stem: str) -> Written:
    written = Written(directory / f"{stem}.pem", directory / f"{stem}-key.pem")
    for path in (written.cert, written.key):
        if path.exists():
            raise TlsError(f"{path} exists: remove it first, or pick another --dir")
    return written


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, days: int
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _DAY)
        .not_valid_after(now + days * _DAY)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _alt_names(names: Sequence[str]) -> list[x509.GeneralName]:
    """IP literals as IP addresses, everything else as DNS names, each once."""
    out: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = directory / f"{CA_NAME}.pem", directory / f"{CA_NAME}-key.pem"
    if not cert_path.exists() or not key_path.exists():
        raise TlsError(f"no CA in {directory}: run `switchboard tls ca --dir {directory}` first")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TlsError(f"{key_path} is not an ECDSA key made by `switchboard tls ca`")
    return cert, key


def _write(written: Written, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    written.cert.parent.mkdir(parents=True, exist_ok=True)
    written.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(written.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)


@dataclass(frozen=True)
class DevPki:
    """A development PKI in one folder: the CA, and a certificate per process name."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / f"{CA_NAME}.pem"

    def cert(self, name: str) -> Written:
        return Written(self.directory / f"{name}.pem", self.directory / f"{name}-key.pem")


def development_pki(directory: Path, names: Sequence[str], hosts: Sequence[str]) -> DevPki:
    """Make whatever is missing of a CA and a certificate per name (valid for ``hosts``).

    Idempotent: existing files are kept, so clients that trust the CA keep working
    across restarts. Example: ``development_pki(Path("var/tls"), ["registry"], ["127.0.0.1"])``.
    """
    pki = DevPki(directory)
    if not pki.ca.exists():
        make_ca(directory)
    for name in names:
        if not pki.cert(name).cert.exists():
            make_cert(directory, name, hosts)
    return pki
