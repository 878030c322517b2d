"""The policy file: who may call which method, and how tokens are checked.

One TOML file (``--auth FILE`` / ``SWITCHBOARD_AUTH``) holds it all::

    reflection = "open"               # "open", "authenticated" or "off" (production)

    [tokens]
    issuer = "switchboard-dev"
    audience = "switchboard"
    clock_skew_s = 30
    hs256_secret_file = "dev-secret"  # relative to this file; or --auth-secret-file
    # jwks_file = "jwks.json"         # RS256/ES256 public keys; or --auth-jwks-file

    [[allow]]
    methods = ["helloworld.v1.Greeter/Get*"]
    scopes = ["greetings:read"]

    [[allow]]
    methods = ["helloworld.v1.Greeter/GetGreeting"]
    services = ["frontend"]           # a client certificate naming "frontend" (mTLS)

A rule's ``methods`` are shell-style patterns over ``package.Service/Method``.
Within a rule every condition given must hold: ``scopes`` (the token has them
all), ``roles`` (one of them), ``subjects`` (one of them), ``services`` (the
client certificate names one), or ``authenticated = true`` (any valid caller).
A call is allowed when one rule allows it; nothing else is (default deny).
Health checks are always open. The policy names no service in code: it is data.

Example::

    policy = load_policy(Path("deploy/auth/policy.example.toml"))
    policy.rules_for("helloworld.v1.Greeter/GetGreeting")
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from services.runtime.auth._identity import Principal
from services.runtime.auth._tokens import TokenSettings, load_jwks, read_secret
from services.runtime.config import ConfigError

__all__ = ["REFLECTION_MODES", "Policy", "Rule", "load_policy"]

REFLECTION_MODES = ("open", "authenticated", "off")
_RULE_KEYS = {"methods", "scopes", "roles", "subjects", "services", "authenticated"}
_TOKEN_KEYS = {"issuer", "audience", "clock_skew_s", "hs256_secret_file", "jwks_file"}
_TOP_KEYS = {"reflection", "tokens", "allow"}


@dataclass(frozen=True)
class Rule:
    """One ``[[allow]]`` entry: methods, and the conditions a caller must all meet."""

    methods: tuple[str, ...]
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    subjects: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()
    authenticated: bool = False

    def covers(self, method: str) -> bool:
        """True when one of the patterns matches ``package.Service/Method``."""
        return any(fnmatchcase(method, pattern) for pattern in self.methods)

    def allows(self, principal: Principal) -> bool:
        """True when ``principal`` meets every condition of the rule."""
        claims = principal.claims
        if self.services and not self.services & principal.services:
            return False
        if self.subjects and (claims is None or claims.subject not in self.subjects):
            return False
        if self.scopes and (claims is None or not self.scopes <= claims.scopes):
            return False
        return not self.roles or (claims is not None and bool(self.roles & claims.roles))


@dataclass(frozen=True)
class Policy:
    """The parsed policy file. Example: ``load_policy(path).reflection == "open"``."""

    tokens: TokenSettings | None
    rules: tuple[Rule, ...] = ()
    reflection: str = "off"
    source: Path | None = field(default=None, compare=False)

    def rules_for(self, method: str) -> tuple[Rule, ...]:
        """The rules that cover ``method`` (``package.Service/Method``)."""
        return tuple(rule for rule in self.rules if rule.covers(method))


def load_policy(
    path: Path, *, secret_file: Path | None = None, jwks_file: Path | None = None
) -> Policy:
    """Read and check a policy file; ``secret_file``/``jwks_file`` override its key files.

    Raises :class:`ConfigError` with one line naming the file and the problem.
    """
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise ConfigError(f"--auth {str(path)!r}: no such readable file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"--auth {str(path)!r}: not valid TOML: {err}") from None
    where = f"--auth {str(path)!r}"
    _only(document, _TOP_KEYS, where)
    reflection = document.get("reflection", "off")
    if reflection not in REFLECTION_MODES:
        raise ConfigError(f"{where}: reflection must be one of {', '.join(REFLECTION_MODES)}")
    rules = tuple(_rule(entry, where) for entry in _list(document.get("allow", []), where))
    tokens = _tokens(document.get("tokens"), path.parent, secret_file, jwks_file, where)
    return Policy(tokens=tokens, rules=rules, reflection=reflection, source=path)


def _tokens(
    table: Any, base: Path, secret_file: Path | None, jwks_file: Path | None, where: str
) -> TokenSettings | None:
    """The [tokens] table as settings (None: no tokens, certificates only)."""
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [tokens] must be a table")
    _only(table, _TOKEN_KEYS, f"{where} [tokens]")
    secret_path = secret_file or _relative(base, table.get("hs256_secret_file"))
    jwks_path = jwks_file or _relative(base, table.get("jwks_file"))
    if secret_path is None and jwks_path is None:
        raise ConfigError(f"{where}: [tokens] needs hs256_secret_file or jwks_file")
    return TokenSettings(
        issuer=str(table.get("issuer", "")),
        audience=str(table.get("audience", "")),
        hs256_secret=read_secret(secret_path) if secret_path else None,
        jwks=load_jwks(jwks_path) if jwks_path else {},
        clock_skew_s=float(table.get("clock_skew_s", 30)),
    )


def _rule(entry: Any, where: str) -> Rule:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: every [[allow]] must be a table")
    _only(entry, _RULE_KEYS, f"{where} [[allow]]")
    methods = tuple(p.removeprefix("/") for p in _names(entry, "methods", where))
    rule = Rule(
        methods=methods,
        scopes=frozenset(_names(entry, "scopes", where)),
        roles=frozenset(_names(entry, "roles", where)),
        subjects=frozenset(_names(entry, "subjects", where)),
        services=frozenset(_names(entry, "services", where)),
        authenticated=entry.get("authenticated", False) is True,
    )
    if not methods:
        raise ConfigError(f"{where}: every [[allow]] needs methods")
    if not (rule.scopes or rule.roles or rule.subjects or rule.services or rule.authenticated):
        # An empty rule would let anyone with any valid token in: say so explicitly.
        raise ConfigError(f"{where}: an [[allow]] for {methods[0]} names nobody")
    return rule


def _names(entry: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: {key} must be a list of non-empty strings")
    return value


def _list(value: Any, where: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: allow must be an array of tables ([[allow]])")
    return value


def _only(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    """A misspelt key must not silently widen or narrow the policy."""
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}")


def _relative(base: Path, value: Any) -> Path | None:
    if value is None:
        return None
    path = Path(str(value))
    return path if path.is_absolute() else base / path
