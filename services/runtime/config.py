"""Server settings: one frozen dataclass, filled from flags, environment and defaults.

Every setting has a flag ``--x-y`` and an environment variable
``SWITCHBOARD_X_Y``; a flag beats the environment, which beats the default.
Bad values raise :class:`ConfigError` with a one-line message (the binary
prints it without a traceback).

Example::

    parser = argparse.ArgumentParser(prog="greeter")
    add_server_arguments(parser, default_port=50052)
    config = parse_server_config(parser)          # exits 2 on a bad value
    config.port                                   # 50052 unless overridden
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import grpc

__all__ = [
    "BadValue",
    "ClientTlsConfig",
    "ConfigError",
    "LOG_LEVELS",
    "Option",
    "ServerConfig",
    "add_client_tls_arguments",
    "add_options",
    "access_log_sampling",
    "add_server_arguments",
    "parse_address",
    "parse_server_config",
    "parse_switch",
    "read_options",
]

MIB = 1024 * 1024
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
"""The levels ``--log-level`` accepts (help and error name the same list)."""
KIB = 1024
ENV_PREFIX = "SWITCHBOARD_"
HTTP_PORT_OFFSET = 1000
HTTP_OFF = "off"
LOG_FORMATS = ("text", "json")
_DEFAULT_LISTEN_DEST = "switchboard_default_listen"
_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}


class BadValue(argparse.ArgumentTypeError, ValueError):
    """A flag or variable value that does not parse; argparse shows its message as is."""


class ConfigError(ValueError):
    """A setting has a bad value; ``str(err)`` is a one-line message for a person."""


@dataclass(frozen=True)
class ServerConfig:
    """Everything a server needs to listen, limit and stop.

    Example::

        config = ServerConfig(listen="127.0.0.1:0", grace_s=2)
        config.port   # 0: the factory picks a free port
    """

    listen: str = "127.0.0.1:0"
    advertise_host: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    max_receive_message_bytes: int = 4 * MIB
    max_send_message_bytes: int = 4 * MIB
    max_concurrent_streams: int = 256
    keepalive_time_s: float = 60.0
    keepalive_timeout_s: float = 20.0
    min_ping_interval_s: float = 10.0
    max_metadata_bytes: int = 16 * KIB
    grace_s: float = 10.0
    log_level: str = "INFO"
    auth: Path | None = None
    auth_secret_file: Path | None = None
    auth_jwks_file: Path | None = None
    http_listen: str | None = None
    log_format: str = "text"
    access_log: str = "all"

    def __post_init__(self) -> None:
        _split_listen(self.listen)
        _check_limits(self)
        _check_tls(self)
        _check_auth(self)
        _check_observability(self)
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(
                f"invalid --log-level {self.log_level!r}: use one of {', '.join(LOG_LEVELS)}"
            )

    @property
    def http_address(self) -> tuple[str, int] | None:
        """Where the HTTP side port listens (``/metrics``), or None when it is ``off``.

        Default: the listen host at the gRPC port + 1000 (port 0 stays 0: a free port).
        Example: ``ServerConfig(listen="127.0.0.1:50052").http_address == ("127.0.0.1", 51052)``.
        """
        if self.http_listen is None:
            port = self.port + HTTP_PORT_OFFSET if self.port else 0
            return self.host, port if port <= 65535 else 0
        if self.http_listen == HTTP_OFF:
            return None
        return _split_listen(self.http_listen, "--http-listen")

    @property
    def host(self) -> str:
        """The host part of ``listen`` (brackets of an IPv6 literal removed)."""
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """The port part of ``listen``; 0 means "pick a free one"."""
        return _split_listen(self.listen)[1]

    @property
    def tls(self) -> bool:
        """True when the server listens with TLS."""
        return self.tls_cert is not None

    @property
    def mtls(self) -> bool:
        """True when clients must present a certificate signed by ``tls_client_ca``."""
        return self.tls_client_ca is not None

    def listen_on(self, port: int) -> str:
        """``listen`` with its port replaced, e.g. after binding port 0.

        Example: ``ServerConfig().listen_on(5000) == "127.0.0.1:5000"``.
        """
        host = self.listen.rpartition(":")[0]
        return f"{host}:{port}"

    def advertise_address(self, port: int) -> str:
        """The ``host:port`` other processes should dial (what the registry stores).

        A wildcard listen host (``0.0.0.0``) is no address to dial, so the
        machine's host name stands in unless ``advertise_host`` is set.
        """
        host = self.advertise_host or self.host
        if host in _WILDCARD_HOSTS:
            host = socket.gethostname()
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{port}"

    @classmethod
    def from_args(
        cls, ns: argparse.Namespace, environ: Mapping[str, str] | None = None
    ) -> ServerConfig:
        """Build a config from parsed flags, then ``SWITCHBOARD_*`` variables, then defaults.

        Example::

            ns = parser.parse_args(["--grace-s", "3"])
            ServerConfig.from_args(ns, {"SWITCHBOARD_GRACE_S": "9"}).grace_s   # 3.0
        """
        values: dict[str, Any] = {}
        default_listen = getattr(ns, _DEFAULT_LISTEN_DEST, None)
        if default_listen is not None:
            values["listen"] = default_listen
        values.update(read_options(ns, _OPTIONS, environ))
        return cls(**values)


class Option(NamedTuple):
    """One setting as a command-line flag and an environment variable.

    ``flag`` and ``env`` default to ``--field-name`` and ``SWITCHBOARD_FIELD_NAME``.

    Example: ``Option("ttl_s", float, "lease TTL", flag="--registry-ttl-s")``.
    """

    field: str
    parse: Callable[[str], Any]
    help: str
    flag: str = ""
    env: str = ""
    switch: bool = False  # a yes/no setting: the bare flag means yes

    @classmethod
    def yes_no(cls, field: str, help: str, *, flag: str = "", env: str = "") -> Option:
        """A switch: ``--flag`` alone turns it on, ``--flag=false`` off; env ``1``/``0``.

        Example: ``Option.yes_no("tls", "dial the registry over TLS", flag="--registry-tls")``.
        """
        return cls(field, parse_switch, help, flag, env, switch=True)

    @property
    def flag_name(self) -> str:
        return self.flag or "--" + self.field.replace("_", "-")

    @property
    def env_name(self) -> str:
        return self.env or ENV_PREFIX + self.field.upper()


def add_options(
    parser: argparse.ArgumentParser,
    title: str,
    options: Sequence[Option],
    defaults: Mapping[str, object] | None = None,
) -> None:
    """Add one flag per option to a group of ``parser``; ``defaults`` only show in the help.

    The flags default to None ("not given") so that :func:`read_options` can
    fall back to the environment. Example: ``add_options(parser, "registry", OPTIONS)``.
    """
    group = parser.add_argument_group(title, f"each flag also reads {ENV_PREFIX}<FLAG>")
    for option in options:
        shown = "" if defaults is None else f"; default {defaults.get(option.field)}"
        extra: dict[str, Any] = {"nargs": "?", "const": True} if option.switch else {}
        group.add_argument(
            option.flag_name,
            dest=option.field,
            type=option.parse,
            default=None,
            metavar="yes|no" if option.switch else option.field.split("_")[-1].upper(),
            help=f"{option.help} (env {option.env_name}{shown})",
            **extra,
        )


def read_options(
    ns: argparse.Namespace, options: Sequence[Option], environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The options that are set: each flag's value, else its variable's (parsed).

    Raises :class:`ConfigError` naming the variable when a value does not parse.
    Example: ``read_options(ns, OPTIONS, {"SWITCHBOARD_GRACE_S": "3"})``.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for option in options:
        value = _lookup(option, ns, env)
        if value is not None:
            values[option.field] = value
    return values


_OPTIONS: tuple[Option, ...] = (
    Option("listen", str, "host:port to listen on (port 0 picks a free port)"),
    Option("advertise_host", str, "host other processes dial (default: the listen host)"),
    Option("tls_cert", Path, "PEM server certificate chain; enables TLS"),
    Option("tls_key", Path, "PEM private key of --tls-cert"),
    Option("tls_client_ca", Path, "PEM CA bundle; clients must present a cert it signed (mTLS)"),
    Option("max_receive_message_bytes", int, "largest request message accepted"),
    Option("max_send_message_bytes", int, "largest response message sent"),
    Option("max_concurrent_streams", int, "concurrent calls allowed per client connection"),
    Option("keepalive_time_s", float, "seconds between server pings on an idle connection"),
    Option("keepalive_timeout_s", float, "seconds to wait for a ping ack before closing"),
    Option("min_ping_interval_s", float, "a client pinging more often than this gets GOAWAY"),
    Option("max_metadata_bytes", int, "largest request metadata (headers) accepted"),
    Option("grace_s", float, "seconds in-flight calls get to finish on SIGTERM"),
    Option("log_level", str, f"one of {', '.join(LOG_LEVELS)}"),
    Option("auth", Path, "policy file (TOML): who may call what; unset = every call is open"),
    Option("auth_secret_file", Path, "HS256 secret for bearer tokens (overrides the policy's)"),
    Option("auth_jwks_file", Path, "JWKS of RS256/ES256 token keys (overrides the policy's)"),
    Option("http_listen", str, "host:port of the HTTP side port (/metrics), or off"),
    Option("log_format", str, "text or json (one JSON object per line)"),
    Option("access_log", str, "all, errors, or sampled:N (1 in N successes; errors always)"),
)


@dataclass(frozen=True)
class ClientTlsConfig:
    """The TLS credentials a service presents on EVERY call it makes to other services
    (the registry has its own, ``--registry-*``). Nothing set: plaintext.

    Example::

        ClientTlsConfig(ca=Path("ca.pem"), cert=Path("me.pem"), key=Path("me.key")).credentials()
    """

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ConfigError("--client-tls-cert and --client-tls-key go together")

    def credentials(self) -> grpc.ChannelCredentials | None:
        """Channel credentials (mTLS when a certificate is set), or None when nothing is set.
        Without a CA the system's roots are trusted."""
        if self.ca is None and self.cert is None:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes() if self.ca else None,
            private_key=self.key.read_bytes() if self.key else None,
            certificate_chain=self.cert.read_bytes() if self.cert else None,
        )

    def channel_options(self) -> tuple[tuple[str, Any], ...]:
        """The TLS name to expect from the services called, when it is not their host."""
        return (("grpc.ssl_target_name_override", self.server_name),) if self.server_name else ()

    @classmethod
    def from_args(
        cls, ns: argparse.Namespace, environ: Mapping[str, str] | None = None
    ) -> ClientTlsConfig:
        """From the ``--client-tls-*`` flags, then ``SWITCHBOARD_CLIENT_TLS_*`` variables."""
        return cls(**read_options(ns, _CLIENT_TLS_OPTIONS, environ))


def _client_option(field: str, parse: Callable[[str], Any], help: str) -> Option:
    """``--client-tls-<field>`` / ``SWITCHBOARD_CLIENT_TLS_<FIELD>`` (the variables the
    client runtime reads too, see ``ClientConfig.from_env``)."""
    name = field.replace("_", "-")
    env = f"{ENV_PREFIX}CLIENT_TLS_{field.upper()}"
    return Option(field, parse, help, f"--client-tls-{name}", env)


_CLIENT_TLS_OPTIONS: tuple[Option, ...] = (
    _client_option("ca", Path, "PEM CA bundle the called services' certificates chain to"),
    _client_option("cert", Path, "PEM client certificate presented to them (mTLS)"),
    _client_option("key", Path, "PEM private key of --client-tls-cert"),
    _client_option("server_name", str, "TLS name to expect from them"),
)


def add_client_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--client-tls-*`` flags of a service that calls other services."""
    add_options(parser, "outgoing calls (TLS)", _CLIENT_TLS_OPTIONS)


def add_server_arguments(parser: argparse.ArgumentParser, default_port: int) -> None:
    """Add the server flags to ``parser``; ``--listen`` defaults to ``127.0.0.1:<default_port>``.

    Example: ``add_server_arguments(parser, default_port=50052)``.
    """
    defaults = ServerConfig(listen=f"127.0.0.1:{default_port}")
    add_options(parser, "server", _OPTIONS, vars(defaults))
    parser.set_defaults(**{_DEFAULT_LISTEN_DEST: defaults.listen})


def parse_server_config(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None = None
) -> ServerConfig:
    """Parse ``argv`` into a :class:`ServerConfig`; a bad value exits 2 with a one-line message.

    Example: ``config = parse_server_config(parser)`` in a binary's ``main``.
    """
    ns = parser.parse_args(argv)
    try:
        return ServerConfig.from_args(ns)
    except ConfigError as err:
        parser.error(str(err))


def _lookup(option: Option, ns: argparse.Namespace, env: Mapping[str, str]) -> Any:
    """The flag's value, else the environment variable's (parsed), else None."""
    value = getattr(ns, option.field, None)
    if value is not None:
        return value
    raw = env.get(option.env_name, "")
    if raw == "":
        return None
    try:
        return option.parse(raw)
    except ValueError as err:
        raise ConfigError(f"invalid {option.env_name}={raw!r}: {err}") from None


_YES = frozenset({"1", "true", "yes", "on"})
_NO = frozenset({"0", "false", "no", "off"})


def parse_switch(text: str) -> bool:
    """``yes/no``, ``true/false``, ``on/off``, ``1/0`` → bool; ValueError for anything else.

    Example: ``parse_switch("on") is True``.
    """
    word = text.strip().lower()
    if word in _YES or word in _NO:
        return word in _YES
    raise BadValue(f"expected yes or no (true/false, on/off, 1/0), not {text!r}")


def parse_address(text: str) -> str:
    """A ``host:port`` (or ``[v6]:port``) to dial; ValueError naming the fix when malformed.

    Example: ``parse_address("registry.internal:50051")``.
    """
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise BadValue(f"{text!r} is not host:port (for example 127.0.0.1:50051)")
    return text.strip()


def _split_listen(listen: str, flag: str = "--listen") -> tuple[str, int]:
    """``"host:port"`` (or ``"[v6]:port"``) → ``(host, port)``; ConfigError when malformed."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ConfigError(f"invalid {flag} {listen!r}: expected host:port, e.g. 127.0.0.1:50051")
    port = int(port_text)
    if port > 65535:
        raise ConfigError(f"invalid {flag} {listen!r}: port must be 0-65535")
    return host.removeprefix("[").removesuffix("]"), port


def access_log_sampling(mode: str) -> int:
    """How many successful calls share one access-log line: ``all`` 1, ``errors`` 0 (none),
    ``sampled:N`` N. Errors are always logged. Example: ``access_log_sampling("sampled:10") == 10``.
    """
    if mode == "all":
        return 1
    if mode == "errors":
        return 0
    prefix, _, count = mode.partition(":")
    if prefix == "sampled" and count.isdigit() and int(count) > 0:
        return int(count)
    raise ConfigError(f"invalid --access-log {mode!r}: use all, errors or sampled:N (N > 0)")


def _check_observability(config: ServerConfig) -> None:
    """The HTTP side port, log format and access-log mode are well formed."""
    if config.http_listen not in (None, HTTP_OFF):
        _split_listen(config.http_listen, "--http-listen")
    if config.log_format not in LOG_FORMATS:
        raise ConfigError(f"invalid --log-format {config.log_format!r}: use text or json")
    access_log_sampling(config.access_log)


def _check_limits(config: ServerConfig) -> None:
    """Sizes and counts must be positive, times non-negative (keepalive positive)."""
    positive = (
        "max_receive_message_bytes",
        "max_send_message_bytes",
        "max_concurrent_streams",
        "max_metadata_bytes",
        "keepalive_time_s",
        "keepalive_timeout_s",
    )
    for name in positive:
        if getattr(config, name) <= 0:
            raise ConfigError(f"invalid --{name.replace('_', '-')}: must be greater than 0")
    for name in ("min_ping_interval_s", "grace_s"):
        if getattr(config, name) < 0:
            raise ConfigError(f"invalid --{name.replace('_', '-')}: must not be negative")


def _check_tls(config: ServerConfig) -> None:
    """Cert and key come together, a client CA needs them, and every file is readable."""
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key must be given together")
    if config.tls_client_ca is not None and config.tls_cert is None:
        raise ConfigError("--tls-client-ca (mTLS) needs --tls-cert and --tls-key")
    for field in ("tls_cert", "tls_key", "tls_client_ca"):
        path: Path | None = getattr(config, field)
        if path is not None and not (path.is_file() and os.access(path, os.R_OK)):
            flag = "--" + field.replace("_", "-")
            raise ConfigError(f"{flag} {str(path)!r}: no such readable file")
    if config.tls_cert is not None and config.tls_key is not None:
        _check_key_pair(config.tls_cert, config.tls_key)
    if config.tls_client_ca is not None:
        _check_ca(config.tls_client_ca)


def _check_key_pair(cert: Path, key: Path) -> None:
    """The certificate and key are PEM and belong together (gRPC would only say "bind failed")."""
    try:
        # An empty password: an encrypted key fails here instead of prompting on a terminal.
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=b"")
    except ssl.SSLError as err:
        if "KEY_VALUES_MISMATCH" in str(err):
            raise ConfigError(
                f"--tls-key {str(key)!r} is not the private key of --tls-cert {str(cert)!r}: "
                "pass the key the certificate was issued for"
            ) from None
        raise ConfigError(
            f"--tls-cert {str(cert)!r} / --tls-key {str(key)!r}: not a PEM certificate chain "
            f"and its unencrypted PEM private key ({err.reason or err})"
        ) from None


def _check_ca(ca: Path) -> None:
    try:
        ssl.create_default_context(cafile=str(ca))
    except ssl.SSLError as err:
        raise ConfigError(
            f"--tls-client-ca {str(ca)!r}: not a PEM CA certificate bundle ({err.reason or err})"
        ) from None


def _check_auth(config: ServerConfig) -> None:
    """Key files only mean something with a policy, and every file must be readable."""
    if config.auth is None and (config.auth_secret_file or config.auth_jwks_file):
        raise ConfigError("--auth-secret-file and --auth-jwks-file need --auth (a policy file)")
    for field in ("auth", "auth_secret_file", "auth_jwks_file"):
        path: Path | None = getattr(config, field)
        if path is not None and not (path.is_file() and os.access(path, os.R_OK)):
            flag = "--" + field.replace("_", "-")
            raise ConfigError(f"{flag} {str(path)!r}: no such readable file")
