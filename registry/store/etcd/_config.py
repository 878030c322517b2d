"""How to reach etcd: endpoints, key prefix, TLS and auth, from flags and environment.

Every setting has a flag and a ``SWITCHBOARD_*`` variable (``--etcd`` /
``SWITCHBOARD_ETCD``). The password never comes from a flag (it would show in
the process list): ``--etcd-password-file`` or ``SWITCHBOARD_ETCD_PASSWORD``.

Example::

    config = EtcdConfig.parse_endpoints("10.0.0.1:2379,10.0.0.2:2379")
    config.endpoints      # ("10.0.0.1:2379", "10.0.0.2:2379")
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from services.runtime.config import ConfigError, Option, add_options, read_options

__all__ = ["DEFAULT_PREFIX", "EtcdConfig", "add_etcd_arguments"]

DEFAULT_PREFIX = "/switchboard/registry/v1/"
_PASSWORD_ENV = "SWITCHBOARD_ETCD_PASSWORD"


@dataclass(frozen=True)
class EtcdConfig:
    """The etcd cluster the registry keeps its state in.

    ``timeout`` bounds each registry call's work in etcd when the caller set
    no shorter deadline. ``ca`` turns on TLS; ``cert``/``key`` add a client
    certificate; ``user``/``password`` turn on etcd authentication.

    Example: ``EtcdConfig(("127.0.0.1:2379",), prefix="/test/")``.
    """

    endpoints: tuple[str, ...]
    prefix: str = DEFAULT_PREFIX
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 3.0

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise ConfigError("--etcd needs at least one HOST:PORT")
        for endpoint in self.endpoints:
            _check_endpoint(endpoint)
        if not self.prefix.startswith("/") or not self.prefix.endswith("/"):
            raise ConfigError(f"--etcd-prefix must start and end with '/' (got {self.prefix!r})")
        if (self.cert is None) != (self.key is None):
            raise ConfigError("give --etcd-cert and --etcd-key together")
        if (self.user is None) != (self.password is None):
            raise ConfigError(
                f"--etcd-user needs a password (--etcd-password-file or {_PASSWORD_ENV}), "
                "and a password needs --etcd-user"
            )
        if self.timeout <= 0:
            raise ConfigError("--etcd-timeout must be greater than 0")

    @classmethod
    def parse_endpoints(cls, text: str, **kw: object) -> EtcdConfig:
        """A config from a comma-separated endpoint list.

        Example: ``EtcdConfig.parse_endpoints("a:2379,b:2379", prefix="/x/")``.
        """
        endpoints = tuple(part.strip() for part in text.split(",") if part.strip())
        return cls(endpoints, **kw)  # type: ignore[arg-type]

    @classmethod
    def from_args(
        cls, ns: argparse.Namespace, environ: Mapping[str, str] | None = None
    ) -> EtcdConfig | None:
        """The etcd config from flags and environment; None without ``--etcd`` (memory store).

        Example: ``EtcdConfig.from_args(ns, {"SWITCHBOARD_ETCD": "127.0.0.1:2379"})``.
        """
        env = os.environ if environ is None else environ
        values = read_options(ns, _OPTIONS, env)
        endpoints = values.pop("etcd", None)
        password = _password(values.pop("etcd_password_file", None), env)
        if endpoints is None:
            if values or password is not None:
                raise ConfigError("--etcd-* settings need --etcd HOST:PORT[,HOST:PORT...]")
            return None
        config = cls.parse_endpoints(endpoints)
        renamed = {k.removeprefix("etcd_"): v for k, v in values.items()}
        return replace(config, password=password, **renamed)


_OPTIONS: tuple[Option, ...] = (
    Option(
        "etcd",
        str,
        "keep the registry's state in this etcd cluster, HOST:PORT[,HOST:PORT...] "
        "(several registry replicas may share it); unset = in-memory store",
    ),
    Option("etcd_prefix", str, f"key prefix in etcd (default {DEFAULT_PREFIX})"),
    Option("etcd_ca", Path, "PEM CA bundle that signed etcd's certificates; enables TLS"),
    Option("etcd_cert", Path, "PEM client certificate for etcd (with --etcd-key)"),
    Option("etcd_key", Path, "PEM private key of --etcd-cert"),
    Option("etcd_user", str, f"etcd user name (password: --etcd-password-file or {_PASSWORD_ENV})"),
    Option("etcd_password_file", Path, "file whose content (stripped) is the etcd password"),
    Option("etcd_timeout", float, "seconds a registry call may spend in etcd (default 3)"),
)


def add_etcd_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--etcd*`` flags to ``parser``.

    Example: ``add_etcd_arguments(parser)`` then ``EtcdConfig.from_args(ns)``.
    """
    add_options(parser, "etcd store", _OPTIONS)


def _password(path: Path | None, env: Mapping[str, str]) -> str | None:
    """The etcd password from its file, else from the environment, else None."""
    if path is None:
        return env.get(_PASSWORD_ENV) or None
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"--etcd-password-file {str(path)!r}: cannot read it") from None
    if not text:
        raise ConfigError(f"--etcd-password-file {str(path)!r} is empty")
    return text


def _check_endpoint(endpoint: str) -> None:
    """``HOST:PORT`` or ``[V6]:PORT`` with a port in 1..65535."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--etcd endpoint {endpoint!r} is not HOST:PORT")
