"""TokenVerifier: what verifies, what does not (and why, by reason), the cache, the key files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest

from services.runtime.auth import TokenSettings, TokenVerifier, load_jwks, mint_token
from services.runtime.config import ConfigError
from services.runtime.errors import Unauthenticated
from tests.auth._support import AUDIENCE, ISSUER, Keys


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys.create(tmp_path)


def verifier(keys: Keys, *, clock: float | None = None, cache_size: int = 100) -> TokenVerifier:
    settings = TokenSettings(
        ISSUER,
        AUDIENCE,
        hs256_secret=keys.secret,
        jwks=load_jwks(keys.jwks_file),
        clock_skew_s=30,
        cache_size=cache_size,
    )
    if clock is None:
        return TokenVerifier(settings)
    return TokenVerifier(settings, clock=lambda: clock)


@pytest.mark.parametrize("alg", ["HS256", "RS256", "ES256"])
def test_a_valid_token_gives_its_claims(keys: Keys, alg: str) -> None:
    token = keys.token(alg, subject="bob", scopes=["users:read", "x"], roles=["admin"])
    claims = verifier(keys).verify(token)
    assert (claims.subject, claims.scopes, claims.roles) == (
        "bob",
        frozenset({"users:read", "x"}),
        frozenset({"admin"}),
    )


def test_scp_list_is_read_as_scopes(keys: Keys) -> None:
    token = keys.token(scope=None, scp=["a", "b"])
    assert verifier(keys).verify(token).scopes == {"a", "b"}


def reason(verify: TokenVerifier, token: str) -> str | None:
    with pytest.raises(Unauthenticated) as caught:
        verify.verify(token)
    return caught.value.reason


def test_every_forged_token_is_refused_with_a_stable_reason(keys: Keys) -> None:
    verify = verifier(keys)
    reasons = {kind: reason(verify, t) for kind, t in keys.forged().items() if t is not None}
    assert reasons == {
        "malformed": "TOKEN_INVALID",
        "expired": "TOKEN_EXPIRED",
        "not_yet_valid": "TOKEN_NOT_YET_VALID",
        "wrong_issuer": "TOKEN_INVALID",
        "wrong_audience": "TOKEN_INVALID",
        "alg_none": "TOKEN_INVALID",
        "hs256_with_rs_public_key": "TOKEN_INVALID",
        "tampered": "TOKEN_INVALID",
        "unknown_kid": "TOKEN_INVALID",
        "missing_sub": "TOKEN_INVALID",
    }


def test_key_confusion_fails_even_without_an_hs256_secret(keys: Keys) -> None:
    settings = TokenSettings(ISSUER, AUDIENCE, jwks=load_jwks(keys.jwks_file))
    assert reason(TokenVerifier(settings), keys.forged()["hs256_with_rs_public_key"] or "") == (
        "TOKEN_INVALID"
    )


def test_an_rs256_header_with_the_ec_key_id_is_refused(keys: Keys) -> None:
    """The key's own type decides the algorithm, not the header."""
    token = keys.token("RS256", kid="ec-1")
    assert reason(verifier(keys), token) == "TOKEN_INVALID"


def test_a_required_claim_missing_is_invalid(keys: Keys) -> None:
    for claim in ("exp", "iss", "aud", "sub"):
        payload = keys.claims()
        del payload[claim]
        token = jwt.encode(payload, keys.secret, algorithm="HS256")
        assert reason(verifier(keys), token) == "TOKEN_INVALID", claim


def test_clock_skew_is_allowed_within_bounds(keys: Keys) -> None:
    now = time.time()
    just_expired = keys.token(exp=int(now) - 10)
    assert verifier(keys).verify(just_expired).subject == "alice"
    too_late = keys.token(exp=int(now) - 60)
    assert reason(verifier(keys), too_late) == "TOKEN_EXPIRED"


def test_a_cached_token_still_expires(keys: Keys) -> None:
    now = time.time()
    token = keys.token(exp=int(now) + 60)
    clock = [now]
    settings = TokenSettings(ISSUER, AUDIENCE, hs256_secret=keys.secret, clock_skew_s=0)
    verify = TokenVerifier(settings, clock=lambda: clock[0])
    assert verify.verify(token).subject == "alice"
    clock[0] = now + 120
    assert reason(verify, token) == "TOKEN_EXPIRED"


def test_the_cache_is_bounded(keys: Keys) -> None:
    verify = verifier(keys, cache_size=3)
    for n in range(10):
        verify.verify(keys.token(subject=f"user-{n}"))
    assert len(verify._cache) == 3  # noqa: SLF001 - the bound is the point


def test_settings_refuse_a_short_secret_and_a_huge_skew() -> None:
    with pytest.raises(ConfigError):
        TokenSettings(ISSUER, AUDIENCE, hs256_secret=b"short")
    with pytest.raises(ConfigError):
        TokenSettings(ISSUER, AUDIENCE, hs256_secret=b"x" * 32, clock_skew_s=3600)


def test_jwks_refuses_symmetric_and_private_keys(tmp_path: Path, keys: Keys) -> None:
    oct_key = {"kty": "oct", "k": "c2VjcmV0", "kid": "s"}
    private = json.loads(keys.jwks_file.read_text())["keys"][0] | {"d": "AQAB"}
    for bad in (oct_key, private, {"kty": "RSA", "alg": "HS256", "n": "AQAB", "e": "AQAB"}):
        path = tmp_path / "bad.json"
        path.write_text(json.dumps({"keys": [bad]}))
        with pytest.raises(ConfigError):
            load_jwks(path)


def test_minted_tokens_verify(keys: Keys) -> None:
    token = mint_token(
        keys.secret, subject="carol", scopes=["a"], roles=["r"], issuer=ISSUER, audience=AUDIENCE
    )
    claims = verifier(keys).verify(token)
    assert (claims.subject, set(claims.scopes), set(claims.roles)) == ("carol", {"a"}, {"r"})
