"""Development mode (``make run AUTH=1``): one secret, the example policy, tokens for everyone.

:func:`dev_auth` makes sure the development secret exists and mints what a
supervisor needs to start a platform with auth on: the settings every server
gets (``SWITCHBOARD_AUTH``, ``SWITCHBOARD_AUTH_SECRET_FILE``), a token per
service (as its registry token and its client token: without mTLS a service
has no certificate to prove who it is) and an operator token to print. Tokens
carry every scope the policy names (operators also every role): development
trusts its own processes; production uses certificates and real tokens.

Example::

    dev = dev_auth(Path("deploy/auth/policy.example.toml"), Path("var/auth/dev-secret"))
    env = dev.service_env("greeter")      # for the greeter service's process
    print(f"export TOKEN={dev.operator_token()}")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from services.runtime.auth._policy import Policy, load_policy
from services.runtime.auth._tokens import ensure_dev_secret, mint_token
from services.runtime.config import ConfigError

__all__ = ["DevAuth", "dev_auth"]

_DAY_S = 24 * 3600.0


@dataclass(frozen=True)
class DevAuth:
    """The development policy, secret and token scopes; see :func:`dev_auth`."""

    policy_file: Path
    secret_file: Path
    issuer: str
    audience: str
    scopes: tuple[str, ...]
    roles: tuple[str, ...]
    secret: bytes = field(repr=False, default=b"")

    def server_env(self) -> dict[str, str]:
        """What every server process needs to check callers."""
        return {
            "SWITCHBOARD_AUTH": str(self.policy_file),
            "SWITCHBOARD_AUTH_SECRET_FILE": str(self.secret_file),
        }

    def service_env(self, name: str) -> dict[str, str]:
        """A service's server settings plus its own token, for the registry and for calls."""
        token = self.token(name, roles=())
        return {**self.server_env(), "SWITCHBOARD_TOKEN": token, "SWITCHBOARD_AUTH_TOKEN": token}

    def operator_token(self, subject: str = "dev") -> str:
        """A token with every scope and role of the policy, valid for a day."""
        return self.token(subject, roles=self.roles)

    def token(self, subject: str, *, roles: tuple[str, ...]) -> str:
        """A day-long token for ``subject`` with every scope of the policy and ``roles``."""
        return mint_token(
            self.secret,
            subject=subject,
            issuer=self.issuer,
            audience=self.audience,
            scopes=self.scopes,
            roles=roles,
            ttl_s=_DAY_S,
        )


def dev_auth(policy_file: Path, secret_file: Path) -> DevAuth:
    """Ensure the secret, read the policy; ConfigError if it cannot sign HS256 tokens."""
    ensure_dev_secret(secret_file)
    policy = load_policy(policy_file, secret_file=secret_file)
    tokens = policy.tokens
    if tokens is None or tokens.hs256_secret is None:
        raise ConfigError(f"{policy_file}: development mode needs a [tokens] table")
    return DevAuth(
        policy_file=policy_file,
        secret_file=secret_file,
        issuer=tokens.issuer,
        audience=tokens.audience,
        scopes=_every(policy, "scopes"),
        roles=_every(policy, "roles"),
        secret=tokens.hs256_secret,
    )


def _every(policy: Policy, kind: str) -> tuple[str, ...]:
    return tuple(sorted({name for rule in policy.rules for name in getattr(rule, kind)}))
