"""Caller identity and authorization for every Switchboard server, from one policy file.

Identities: service names from an mTLS client certificate (CN and SANs), end
users and tools from ``authorization: Bearer <JWT>`` (HS256 for development,
RS256/ES256 from a JWKS file for production). The policy (``--auth FILE``)
says which of them may call which method; once it is on, everything else is
denied, except health checks.

Example::

    policy = load_policy(Path("deploy/auth/policy.example.toml"),
                         secret_file=Path("var/auth/dev-secret"))
    authorizer = Authorizer(policy, mtls=False, open_services=["grpc.health.v1.Health"])
    token = mint_token(read_secret(Path("var/auth/dev-secret")), subject="alice",
                       scopes=["users:read"], issuer="switchboard-dev", audience="switchboard")
"""

from __future__ import annotations

from services.runtime.auth._client import TokenSource
from services.runtime.auth._dev import DevAuth, dev_auth
from services.runtime.auth._gate import Authorizer, MethodGate, audit_log, resource_id
from services.runtime.auth._identity import (
    CALLER_KEY,
    Principal,
    caller_subject,
    certificate_names,
    current_principal,
)
from services.runtime.auth._policy import REFLECTION_MODES, Policy, Rule, load_policy
from services.runtime.auth._tokens import (
    ALGORITHMS,
    MAX_CLOCK_SKEW_S,
    Claims,
    TokenSettings,
    TokenVerifier,
    ensure_dev_secret,
    load_jwks,
    mint_token,
    read_secret,
)

__all__ = [
    "ALGORITHMS",
    "CALLER_KEY",
    "MAX_CLOCK_SKEW_S",
    "REFLECTION_MODES",
    "Authorizer",
    "Claims",
    "DevAuth",
    "MethodGate",
    "Policy",
    "Principal",
    "Rule",
    "TokenSettings",
    "TokenSource",
    "TokenVerifier",
    "audit_log",
    "caller_subject",
    "certificate_names",
    "current_principal",
    "dev_auth",
    "ensure_dev_secret",
    "load_jwks",
    "load_policy",
    "mint_token",
    "read_secret",
    "resource_id",
]
