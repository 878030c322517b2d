"""Bearer tokens: verify a JWT against pinned algorithms and keys, cache what verified.

Only three algorithms exist here: HS256 (a shared secret, for development) and
RS256 / ES256 (public keys from a JWKS file, for production). The key is chosen
from the token's ``alg`` *and* the key's own type, and ``jwt.decode`` is told
that one algorithm only, so ``alg: none`` and HS256-signed-with-the-RSA-public-key
(the classic key confusion) cannot verify. ``iss``, ``aud``, ``exp`` and ``sub``
are required; ``exp`` and ``nbf`` allow a bounded clock skew.

Example::

    verifier = TokenVerifier(TokenSettings(issuer="switchboard-dev", audience="switchboard",
                                           hs256_secret=b"x" * 32))
    claims = verifier.verify(mint_token(b"x" * 32, subject="alice", scopes=["users:read"],
                                        issuer="switchboard-dev", audience="switchboard"))
    claims.subject      # "alice"
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# PyJWT (with cryptography, ~10 MB of RSS) is imported by TokenVerifier and mint_token,
# not here: every process imports this module, only those run with --auth use PyJWT.
from services.runtime.config import ConfigError
from services.runtime.errors import Unauthenticated

__all__ = [
    "ALGORITHMS",
    "MAX_CLOCK_SKEW_S",
    "MIN_SECRET_BYTES",
    "Claims",
    "TokenSettings",
    "TokenVerifier",
    "ensure_dev_secret",
    "load_jwks",
    "mint_token",
    "read_secret",
]

ALGORITHMS = ("HS256", "RS256", "ES256")
"""The only algorithms a token may use (and only those a key is configured for)."""

MAX_CLOCK_SKEW_S = 300.0
"""The largest clock skew a policy may allow (5 minutes)."""

MIN_SECRET_BYTES = 32
"""An HS256 secret shorter than the hash (RFC 7518 section 3.2) is refused."""

_REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]
_KEY_ALGORITHM = {"RSA": "RS256", "EC": "ES256"}
_DEFAULT_CACHE = 10_000


@dataclass(frozen=True)
class Claims:
    """What a verified token says about its holder.

    ``scopes`` come from the ``scope`` claim (space-separated, RFC 8693) or a
    ``scp`` list; ``roles`` from a ``roles`` list.
    """

    subject: str
    scopes: frozenset[str]
    roles: frozenset[str]
    expires_at: float


@dataclass(frozen=True)
class TokenSettings:
    """Who issues tokens, for whom, and the keys that verify them.

    ``jwks`` maps a key id to ``(algorithm, key)``; see :func:`load_jwks`.
    Example: ``TokenSettings("switchboard-dev", "switchboard", hs256_secret=secret)``.
    """

    issuer: str
    audience: str
    hs256_secret: bytes | None = field(default=None, repr=False)
    jwks: Mapping[str, tuple[str, Any]] = field(default_factory=dict)
    clock_skew_s: float = 30.0
    cache_size: int = _DEFAULT_CACHE

    def __post_init__(self) -> None:
        if not self.issuer or not self.audience:
            raise ConfigError("auth: [tokens] needs an issuer and an audience")
        if not 0 <= self.clock_skew_s <= MAX_CLOCK_SKEW_S:
            raise ConfigError(f"auth: clock_skew_s must lie in 0..{MAX_CLOCK_SKEW_S:g} seconds")
        if self.hs256_secret is not None and len(self.hs256_secret) < MIN_SECRET_BYTES:
            raise ConfigError(f"auth: the HS256 secret must be at least {MIN_SECRET_BYTES} bytes")

    @property
    def algorithms(self) -> frozenset[str]:
        """The algorithms some configured key can verify."""
        found = {alg for alg, _key in self.jwks.values()}
        if self.hs256_secret is not None:
            found.add("HS256")
        return frozenset(found)


class TokenVerifier:
    """Verifies bearer tokens; a verified token is cached until it expires.

    Every failure is :class:`Unauthenticated` with reason ``TOKEN_EXPIRED``,
    ``TOKEN_NOT_YET_VALID`` or ``TOKEN_INVALID`` and a message that names no
    key, claim value or library error.
    """

    def __init__(self, settings: TokenSettings, *, clock: Callable[[], float] = time.time) -> None:
        import jwt  # noqa: F401 (loaded now, at startup, not on the first call)

        self.settings = settings
        self._clock = clock
        self._cache: dict[str, Claims] = {}

    def verify(self, token: str) -> Claims:
        """The claims of a valid token; raises :class:`Unauthenticated` otherwise."""
        claims = self._cache.get(token)
        if claims is not None:
            if self._clock() < claims.expires_at + self.settings.clock_skew_s:
                return claims
            del self._cache[token]
            raise _expired()
        claims = self._decode(token)
        self._remember(token, claims)
        return claims

    def _remember(self, token: str, claims: Claims) -> None:
        if len(self._cache) >= self.settings.cache_size:
            del self._cache[next(iter(self._cache))]  # the oldest entry: bounded, FIFO
        self._cache[token] = claims

    def _decode(self, token: str) -> Claims:
        import jwt

        try:
            algorithm, key = self._key_for(jwt.get_unverified_header(token))
            payload = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=self.settings.issuer,
                audience=self.settings.audience,
                leeway=self.settings.clock_skew_s,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise _expired() from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("token not valid yet", reason="TOKEN_NOT_YET_VALID") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise _invalid() from None
        return _claims(payload)

    def _key_for(self, header: Mapping[str, Any]) -> tuple[str, Any]:
        """The one algorithm and key this token may be checked with; TOKEN_INVALID if none."""
        algorithm = header.get("alg")
        if algorithm == "HS256" and self.settings.hs256_secret is not None:
            return "HS256", self.settings.hs256_secret
        if algorithm not in ("RS256", "ES256"):
            raise _invalid()
        kid = header.get("kid")
        found = self.settings.jwks.get(kid) if isinstance(kid, str) else self._only_key(algorithm)
        if found is None or found[0] != algorithm:
            raise _invalid()
        return found

    def _only_key(self, algorithm: str) -> tuple[str, Any] | None:
        """Without a ``kid``: the key for ``algorithm`` when there is exactly one."""
        keys = [pair for pair in self.settings.jwks.values() if pair[0] == algorithm]
        return keys[0] if len(keys) == 1 else None


def _claims(payload: Mapping[str, Any]) -> Claims:
    subject = payload.get("sub")
    expires_at = payload.get("exp")
    if not isinstance(subject, str) or not subject or not isinstance(expires_at, int | float):
        raise _invalid()
    return Claims(
        subject=subject,
        scopes=frozenset(_scopes(payload)),
        roles=frozenset(_strings(payload.get("roles"))),
        expires_at=float(expires_at),
    )


def _scopes(payload: Mapping[str, Any]) -> Iterable[str]:
    scope = payload.get("scope")
    if isinstance(scope, str):
        return scope.split()
    return _strings(payload.get("scp"))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _expired() -> Unauthenticated:
    return Unauthenticated("token expired", reason="TOKEN_EXPIRED")


def _invalid() -> Unauthenticated:
    return Unauthenticated("invalid bearer token", reason="TOKEN_INVALID")


# --- keys ---------------------------------------------------------------------------


def read_secret(path: Path) -> bytes:
    """An HS256 secret: the file's content, surrounding whitespace stripped.

    Example: ``read_secret(Path("var/auth/dev-secret"))``.
    """
    try:
        secret = path.read_bytes().strip()
    except OSError:
        raise ConfigError(f"auth: cannot read the HS256 secret file {str(path)!r}") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(f"auth: the HS256 secret in {str(path)!r} is under 32 bytes")
    return secret


def load_jwks(path: Path) -> dict[str, tuple[str, Any]]:
    """The public keys of a JWKS file, by key id: ``{kid: (algorithm, key)}``.

    Only RSA (RS256) and EC P-256 (ES256) keys are taken; a symmetric (``oct``)
    key or one whose ``alg`` disagrees with its type is a configuration error.
    Example: ``load_jwks(Path("deploy/auth/jwks.json"))["k1"][0] == "RS256"``.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        entries = document["keys"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"auth: {str(path)!r} is not a readable JWKS file") from None
    keys: dict[str, tuple[str, Any]] = {}
    for entry in entries:
        kid, pair = _jwk(entry, path)
        keys[kid] = pair
    return keys


def _jwk(entry: Any, path: Path) -> tuple[str, tuple[str, Any]]:
    if not isinstance(entry, dict):
        raise ConfigError(f"auth: {str(path)!r}: every key must be a JSON object")
    algorithm = _KEY_ALGORITHM.get(str(entry.get("kty")))
    if algorithm is None or entry.get("alg", algorithm) != algorithm or "d" in entry:
        raise ConfigError(
            f"auth: {str(path)!r}: only public RSA (RS256) and EC P-256 (ES256) keys are allowed"
        )
    import jwt

    try:
        key = jwt.PyJWK(entry, algorithm).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError):
        raise ConfigError(f"auth: {str(path)!r}: a key does not load") from None
    return str(entry.get("kid", "")), (algorithm, key)


def mint_token(
    secret: bytes,
    *,
    subject: str,
    issuer: str,
    audience: str,
    scopes: Iterable[str] = (),
    roles: Iterable[str] = (),
    ttl_s: float = 3600.0,
    now: float | None = None,
) -> str:
    """A development token signed with HS256.

    Example: ``mint_token(secret, subject="alice", scopes=["users:read"],
    issuer="switchboard-dev", audience="switchboard")``.
    """
    issued = int(time.time() if now is None else now)
    payload: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(ttl_s),
        "scope": " ".join(scopes),
    }
    role_list = list(roles)
    if role_list:
        payload["roles"] = role_list
    import jwt

    return jwt.encode(payload, secret, algorithm="HS256")


def ensure_dev_secret(path: Path) -> bytes:
    """The development HS256 secret in ``path``, written first (mode 0600) if missing.

    Example: ``ensure_dev_secret(Path("var/auth/dev-secret"))`` — the same secret every run.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(MIN_SECRET_BYTES) + "\n")
    return read_secret(path)
