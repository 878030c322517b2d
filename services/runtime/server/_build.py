"""Build a grpc.aio server: servicers, health, reflection, interceptors, limits, TLS.

Building is split from running (see ``_serve.serve``) so tests use the very
factory the binaries use.

Example::

    service = Service(GreeterServicer(), helloworld_pb2_grpc.add_GreeterServicer_to_server,
                      "helloworld.Greeter")
    server, port = create_server([service], ServerConfig())   # port 0 -> a free port
    await server.start()
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import (  # type: ignore[import-untyped, unused-ignore]
    health_pb2,
    health_pb2_grpc,
)
from grpc_health.v1._async import (  # type: ignore[import-untyped, unused-ignore]
    HealthServicer,
)

from services.runtime.auth import Authorizer, load_policy
from services.runtime.config import ServerConfig
from services.runtime.server._reflection import REFLECTION_SERVICE_NAMES, add_reflection
from services.runtime.server._wrapper import default_interceptors

__all__ = [
    "HEALTH_SERVICE_NAME",
    "REFLECTION_SERVICE_NAME",
    "REFLECTION_SERVICE_NAMES",
    "BindError",
    "HealthServicer",
    "Service",
    "build_authorizer",
    "create_server",
    "server_options",
    "set_health_status",
]

HEALTH_SERVICE_NAME: str = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
# grpc.reflection.v1alpha (what grpc_reflection serves); v1 is served alongside it.
REFLECTION_SERVICE_NAME: str = REFLECTION_SERVICE_NAMES[1]

SERVING: int = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: int = health_pb2.HealthCheckResponse.NOT_SERVING

# Pings that arrive too often count as strikes; this many earn a GOAWAY (gRPC's default).
_MAX_PING_STRIKES = 2


class BindError(RuntimeError):
    """The server could not listen; ``str(err)`` is a one-line message for a person."""


@dataclass(frozen=True)
class Service:
    """One servicer and how to add it to a server.

    ``name`` is the full proto service name, used for health and reflection.

    Example::

        Service(GreeterServicer(), add_GreeterServicer_to_server,
                "helloworld.Greeter")
    """

    servicer: Any
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    name: str


def create_server(
    services: Sequence[Service],
    config: ServerConfig,
    *,
    health: HealthServicer | None = None,
) -> tuple[grpc.aio.Server, int]:
    """A bound, not yet started server and its real port.

    Adds the interceptors (metadata limit, request id, metrics, tracing, access log, error
    mapping, decoding, and with ``config.auth`` the caller check of
    :mod:`services.runtime.auth`),
    grpc.health.v1 (pass ``health`` to drive it; ``serve`` does) and server
    reflection v1 and v1alpha for every service, with the contracts' comments,
    so ``grpcurl -plaintext host:port describe`` works without proto files.
    Raises :class:`BindError` when it cannot listen.

    Example: ``server, port = create_server([service], ServerConfig(listen="127.0.0.1:0"))``.
    """
    names = _service_names(services)
    authorizer = build_authorizer(config)
    server = grpc.aio.server(
        # No side port, nobody to scrape: then metrics are not recorded at all.
        interceptors=default_interceptors(
            config.max_metadata_bytes, authorizer, metrics=config.http_address is not None
        ),
        options=server_options(config),
    )
    for service in services:
        service.add_to_server(service.servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health or HealthServicer(), server)
    if authorizer is None or authorizer.policy.reflection != "off":
        add_reflection(server, [*names, HEALTH_SERVICE_NAME])
    return server, _bind(server, config)


def build_authorizer(config: ServerConfig) -> Authorizer | None:
    """The server's authorizer from ``--auth`` (None: auth off, every call open).

    Health is always open; reflection as the policy says. Raises ConfigError
    for a bad policy. Example: ``build_authorizer(ServerConfig(auth=Path("policy.toml")))``.
    """
    if config.auth is None:
        return None
    policy = load_policy(
        config.auth, secret_file=config.auth_secret_file, jwks_file=config.auth_jwks_file
    )
    return Authorizer(
        policy,
        mtls=config.mtls,
        open_services=(HEALTH_SERVICE_NAME,),
        reflection=REFLECTION_SERVICE_NAMES,
    )


def server_options(config: ServerConfig) -> list[tuple[str, Any]]:
    """gRPC core channel arguments for the config's limits and keepalive policy.

    Example: ``("grpc.max_receive_message_length", 4194304) in server_options(ServerConfig())``.
    """
    return [
        ("grpc.max_receive_message_length", config.max_receive_message_bytes),
        ("grpc.max_send_message_length", config.max_send_message_bytes),
        ("grpc.max_concurrent_streams", config.max_concurrent_streams),
        # Soft and hard limit alike: between the two gRPC rejects only some calls, at random.
        ("grpc.max_metadata_size", config.max_metadata_bytes),
        ("grpc.absolute_max_metadata_size", config.max_metadata_bytes),
        ("grpc.keepalive_time_ms", _ms(config.keepalive_time_s)),
        ("grpc.keepalive_timeout_ms", _ms(config.keepalive_timeout_s)),
        # gRPC core (1.85) times a keepalive ping out after grpc.http2.ping_timeout_ms
        # (default 1 min), not keepalive_timeout_ms: without this a dead client is noticed
        # only a minute after its ping, whatever --keepalive-timeout-s says.
        ("grpc.http2.ping_timeout_ms", _ms(config.keepalive_timeout_s)),
        # Enforcement: a client pinging more often than this gets GOAWAY (too_many_pings).
        ("grpc.http2.min_ping_interval_without_data_ms", _ms(config.min_ping_interval_s)),
        ("grpc.http2.max_ping_strikes", _MAX_PING_STRIKES),
        # Idle clients may keep their connection alive (within the interval above).
        ("grpc.keepalive_permit_without_calls", 1),
        # gRPC sets SO_REUSEPORT by default: a second instance would silently share the port.
        ("grpc.so_reuseport", 0),
    ]


async def set_health_status(
    health: HealthServicer, services: Iterable[Service], status: int
) -> None:
    """Set every service's health status and the overall one (``""``).

    Example: ``await set_health_status(health, services, SERVING)``.
    """
    for name in ["", *(service.name for service in services)]:
        await health.set(name, status)


def _service_names(services: Sequence[Service]) -> list[str]:
    names = [service.name for service in services]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"services listed twice: {', '.join(duplicates)}")
    return names


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


# --- binding ------------------------------------------------------------------------


def _bind(server: grpc.aio.Server, config: ServerConfig) -> int:
    """Listen on ``config.listen`` (TLS when configured); return the real port."""
    if config.port and _port_busy(config.host, config.port):
        # Checked first so the person sees our message, not gRPC core's log line.
        raise BindError(f"port {config.port} is busy: is another instance running?")
    credentials = _server_credentials(config)
    try:
        if credentials is None:
            return server.add_insecure_port(config.listen)
        return server.add_secure_port(config.listen, credentials)
    except RuntimeError as err:
        raise BindError(f"cannot listen on {config.listen}: {err}") from None


def _port_busy(host: str, port: int) -> bool:
    """True when another socket already listens on ``host:port``."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror:
        return False  # gRPC will report the bad host itself
    for family, kind, proto, _name, address in infos:
        with socket.socket(family, kind, proto) as probe:
            # Same as gRPC: a port held only by TIME_WAIT connections is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as err:
                if err.errno == errno.EADDRINUSE:
                    return True
    return False


def _server_credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    """TLS credentials from the config's PEM files; mTLS when a client CA is set."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    client_ca = config.tls_client_ca.read_bytes() if config.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(config.tls_key.read_bytes(), config.tls_cert.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )
