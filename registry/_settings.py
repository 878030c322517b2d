"""Registry settings: TTL bounds, the write token and the caps, from flags and environment.

Every setting has a flag and a ``SWITCHBOARD_*`` variable (``--ttl-max`` /
``SWITCHBOARD_TTL_MAX``); a flag beats the environment, which beats the
default. There is no default token: without ``--token``, ``--token-file``,
``SWITCHBOARD_TOKEN`` or ``SWITCHBOARD_TOKEN_FILE`` writes are open.

Example::

    parser = argparse.ArgumentParser()
    add_registry_arguments(parser)
    settings = RegistrySettings.from_args(parser.parse_args(["--ttl-max", "60"]), {})
    settings.ttl_max   # 60.0
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from registry.store import StoreLimits
from registry.store.etcd import EtcdConfig, add_etcd_arguments
from services.runtime.config import ConfigError, Option, add_options, read_options

__all__ = ["RegistrySettings", "add_registry_arguments"]


@dataclass(frozen=True)
class RegistrySettings:
    """What the registry needs beyond the generic server config.

    TTLs are in seconds: a requested TTL of 0 gets ``ttl_default``; others
    must lie in ``[ttl_min, ttl_max]``. ``token`` (None = writes are open)
    is what write calls must present as ``authorization: Bearer <token>``.
    ``etcd`` (None = the in-memory store) is the etcd cluster to keep state in.

    Example: ``RegistrySettings(token="s3cret", limits=StoreLimits(max_watchers=10))``.
    """

    ttl_min: float = 1.0
    ttl_max: float = 300.0
    ttl_default: float = 10.0
    token: str | None = field(default=None, repr=False)
    limits: StoreLimits = field(default_factory=StoreLimits)
    etcd: EtcdConfig | None = None

    def __post_init__(self) -> None:
        if not 0 < self.ttl_min <= self.ttl_default <= self.ttl_max:
            raise ConfigError(
                "TTLs must satisfy 0 < --ttl-min <= --ttl-default <= --ttl-max "
                f"(got {self.ttl_min:g}, {self.ttl_default:g}, {self.ttl_max:g})"
            )
        if self.token is not None:
            _check_token(self.token)
        for name in ("max_instances", "max_instances_per_service", "max_watchers", "watch_queue"):
            if getattr(self.limits, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be greater than 0")
        if self.limits.history < 0:
            raise ConfigError("--history must not be negative")

    @classmethod
    def from_args(
        cls, ns: argparse.Namespace, environ: Mapping[str, str] | None = None
    ) -> RegistrySettings:
        """Settings from parsed flags, then ``SWITCHBOARD_*`` variables, then defaults.

        Example: ``RegistrySettings.from_args(ns, {"SWITCHBOARD_TOKEN": "s3cret"})``.
        """
        values = read_options(ns, _OPTIONS, environ)
        token = _token(values.pop("token", None), values.pop("token_file", None))
        limit_names = set(StoreLimits.__dataclass_fields__)
        limits = StoreLimits(**{k: v for k, v in values.items() if k in limit_names})
        rest = {k: v for k, v in values.items() if k not in limit_names}
        etcd = EtcdConfig.from_args(ns, environ)
        return cls(token=token, limits=limits, etcd=etcd, **rest)


_OPTIONS: tuple[Option, ...] = (
    Option("ttl_min", float, "shortest lease TTL a client may ask for, seconds (default 1)"),
    Option("ttl_max", float, "longest lease TTL a client may ask for, seconds (default 300)"),
    Option("ttl_default", float, "TTL granted when a client asks for 0, seconds (default 10)"),
    Option(
        "token",
        str,
        "bearer token write calls must send (prefer --token-file or the environment: "
        "a flag shows in the process list); no default: unset = writes are open",
    ),
    Option("token_file", Path, "file whose content (stripped) is the bearer token"),
    Option("max_instances", int, "instances over all services (default 100000)"),
    Option("max_instances_per_service", int, "instances per service (default 10000)"),
    Option("max_watchers", int, "concurrently open watches (default 10000)"),
    Option("history", int, "recent events kept for resuming watches (default 10000)"),
    Option(
        "watch_queue",
        int,
        "undelivered events a watcher may hold before it gets a RESYNC snapshot (default 1024)",
    ),
)


def add_registry_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the registry's own flags to ``parser``.

    Example: ``add_registry_arguments(parser)`` then ``RegistrySettings.from_args(ns)``.
    """
    add_options(parser, "registry", _OPTIONS)
    add_etcd_arguments(parser)


def _token(token: str | None, token_file: Path | None) -> str | None:
    """The configured token: from the flag/env, or read from the file; never both."""
    if token is not None and token_file is not None:
        raise ConfigError("give --token or --token-file, not both")
    if token_file is None:
        return token
    try:
        text = token_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"--token-file {str(token_file)!r}: cannot read it") from None
    if not text:
        raise ConfigError(f"--token-file {str(token_file)!r} is empty")
    return text


def _check_token(token: str) -> None:
    """A token must fit in an HTTP/2 header value: visible ASCII, no spaces."""
    if not token or not all("!" <= c <= "~" for c in token):
        raise ConfigError("the token must be non-empty visible ASCII without spaces")
