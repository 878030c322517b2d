"""Development tokens: ``python -m services.runtime.auth token --subject alice --scope users:read``.

Subcommands:

    token       print an HS256 token signed with the development secret; the issuer and
                audience come from the policy (``--auth`` / SWITCHBOARD_AUTH) or flags
    dev-secret  write a development secret to FILE if it has none (mode 0600)

The secret is ``--secret-file``, else ``SWITCHBOARD_AUTH_SECRET_FILE``, else the
policy's ``hs256_secret_file``. The ``switchboard token`` verb runs :func:`main`
with ``["token", *its_arguments]``.

Example::

    $ python -m services.runtime.auth dev-secret var/auth/dev-secret
    $ export TOKEN=$(python -m services.runtime.auth token --auth deploy/auth/policy.example.toml \\
          --subject alice --scope users:read --scope users:write)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from services.runtime.auth._policy import load_policy
from services.runtime.auth._tokens import ensure_dev_secret, mint_token, read_secret
from services.runtime.config import ConfigError

__all__ = ["build_parser", "main", "token_command"]

_EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """The ``token`` and ``dev-secret`` subcommands and their flags."""
    parser = argparse.ArgumentParser(
        prog="python -m services.runtime.auth", description="Switchboard development tokens"
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    token = verbs.add_parser("token", help="mint a development (HS256) token")
    add_token_arguments(token)
    secret = verbs.add_parser("dev-secret", help="write a development secret if missing")
    secret.add_argument("file", type=Path, help="where the secret lives")
    return parser


def add_token_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``token`` (for a CLI that adds the verb itself)."""
    parser.add_argument("--subject", required=True, help="the token's sub claim")
    parser.add_argument("--scope", action="append", default=[], help="a scope (repeatable)")
    parser.add_argument("--role", action="append", default=[], help="a role (repeatable)")
    parser.add_argument("--ttl-s", type=float, default=3600.0, help="lifetime (default 1 h)")
    parser.add_argument("--auth", type=Path, help="policy file (env SWITCHBOARD_AUTH)")
    parser.add_argument(
        "--secret-file", type=Path, help="HS256 secret (env SWITCHBOARD_AUTH_SECRET_FILE)"
    )
    parser.add_argument("--issuer", help="iss claim (default: the policy's)")
    parser.add_argument("--audience", help="aud claim (default: the policy's)")


def token_command(ns: argparse.Namespace) -> str:
    """The token ``ns`` asks for; ConfigError with one line when something is missing."""
    policy_path = ns.auth or _env_path("SWITCHBOARD_AUTH")
    secret_path = ns.secret_file or _env_path("SWITCHBOARD_AUTH_SECRET_FILE")
    issuer, audience, secret = ns.issuer, ns.audience, None
    if policy_path is not None:
        tokens = load_policy(policy_path, secret_file=secret_path).tokens
        if tokens is None or tokens.hs256_secret is None:
            raise ConfigError(f"{policy_path}: the policy has no HS256 secret to sign with")
        issuer, audience = issuer or tokens.issuer, audience or tokens.audience
        secret = tokens.hs256_secret
    elif secret_path is not None:
        secret = read_secret(secret_path)
    if secret is None or not issuer or not audience:
        raise ConfigError("give --auth POLICY (or --secret-file with --issuer and --audience)")
    return mint_token(
        secret,
        subject=ns.subject,
        issuer=issuer,
        audience=audience,
        scopes=ns.scope,
        roles=ns.role,
        ttl_s=ns.ttl_s,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; 0 on success, 2 with a one-line message otherwise."""
    ns = build_parser().parse_args(argv)
    try:
        if ns.verb == "token":
            print(token_command(ns))
        else:
            ensure_dev_secret(ns.file)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return _EXIT_USAGE
    return 0


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "")
    return Path(value) if value else None


if __name__ == "__main__":
    sys.exit(main())
