"""Keys, tokens (good and forged) and the example policy, made fresh for each test.

Example::

    keys = Keys.create(tmp_path)
    token = keys.token(scopes=["users:read"])               # HS256, valid for an hour
    forged = keys.forged()["alg_none"]                      # every way a token can be bad
    config = keys.server_config()                           # auth on with the example policy
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from harness import REPO
from services.runtime import ServerConfig

__all__ = ["ALL_SCOPES", "AUDIENCE", "EXAMPLE_POLICY", "ISSUER", "Keys", "bearer"]

EXAMPLE_POLICY = REPO / "deploy" / "auth" / "policy.example.toml"
ISSUER = "switchboard-dev"  # what the example policy expects
AUDIENCE = "switchboard"
ALL_SCOPES = (
    "users:read",
    "users:write",
    "products:read",
    "products:write",
    "registry:read",
    "registry:write",
)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """The metadata that carries ``token``."""
    return (("authorization", f"Bearer {token}"),)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


@dataclass(frozen=True)
class Keys:
    """An HS256 secret, an RS256 and an ES256 key pair (public halves in a JWKS file)."""

    directory: Path
    secret: bytes
    rsa_key: rsa.RSAPrivateKey
    ec_key: ec.EllipticCurvePrivateKey
    secret_file: Path
    jwks_file: Path

    @classmethod
    def create(cls, directory: Path) -> Keys:
        directory.mkdir(parents=True, exist_ok=True)
        secret = hashlib.sha256(str(directory).encode()).hexdigest().encode()
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ec_key = ec.generate_private_key(ec.SECP256R1())
        secret_file = directory / "secret"
        secret_file.write_bytes(secret + b"\n")
        rsa_jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key()))
        ec_jwk = json.loads(ECAlgorithm.to_jwk(ec_key.public_key()))
        rsa_jwk |= {"kid": "rsa-1", "alg": "RS256", "use": "sig"}
        ec_jwk |= {"kid": "ec-1", "alg": "ES256", "use": "sig"}
        jwks_file = directory / "jwks.json"
        jwks_file.write_text(json.dumps({"keys": [rsa_jwk, ec_jwk]}))
        return cls(directory, secret, rsa_key, ec_key, secret_file, jwks_file)

    def server_config(self, policy: Path = EXAMPLE_POLICY, **more: Any) -> ServerConfig:
        """Auth on with ``policy`` and these keys (port 0, no drain)."""
        return ServerConfig(
            listen="127.0.0.1:0",
            grace_s=0,
            auth=policy,
            auth_secret_file=self.secret_file,
            auth_jwks_file=self.jwks_file,
            **more,
        )

    def claims(
        self,
        *,
        subject: str = "alice",
        scopes: Iterable[str] = (),
        roles: Iterable[str] = (),
        **overrides: Any,
    ) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "scope": " ".join(scopes),
            "roles": list(roles),
        }
        claims.update(overrides)
        return claims

    def token(self, alg: str = "HS256", *, kid: str | None = None, **claims: Any) -> str:
        """A valid token (unless ``claims`` overrides say otherwise) signed with ``alg``."""
        payload = self.claims(**claims)
        if alg == "HS256":
            return jwt.encode(payload, self.secret, algorithm="HS256")
        key: Any = self.rsa_key if alg == "RS256" else self.ec_key
        default_kid = "rsa-1" if alg == "RS256" else "ec-1"
        return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid or default_kid})

    def admin(self, alg: str = "HS256") -> str:
        """A token every rule of the example policy allows."""
        return self.token(alg, subject="root", scopes=ALL_SCOPES, roles=["admin"])

    def forged(self) -> dict[str, str | None]:
        """Every kind of bad credential, by name (None: no authorization header at all)."""
        now = int(time.time())
        everything: dict[str, Any] = {"scopes": ALL_SCOPES, "roles": ["admin"]}
        rs_public = self.rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        payload = self.claims(**everything)
        header, body, signature = self.token("RS256", scopes=["users:read"]).split(".")
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT'})}.{_segment(payload)}"
        confused = hmac.new(rs_public, signing_input.encode(), hashlib.sha256).digest()
        return {
            "no_token": None,
            "malformed": "not-a-jwt",
            "expired": self.token(exp=now - 3600, iat=now - 7200, nbf=now - 7200, **everything),
            "not_yet_valid": self.token(nbf=now + 3600, **everything),
            "wrong_issuer": self.token(iss="https://evil.example", **everything),
            "wrong_audience": self.token(aud="someone-else", **everything),
            "alg_none": f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(payload)}.",
            "hs256_with_rs_public_key": f"{signing_input}.{_b64(confused)}",
            "tampered": f"{header}.{_segment(payload)}.{signature}",
            "unknown_kid": jwt.encode(payload, stranger, algorithm="RS256", headers={"kid": "k9"}),
            "missing_sub": self.token(sub="", **everything),
        }
