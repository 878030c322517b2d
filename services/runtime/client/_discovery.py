"""Finding instances through the registry: settings, flags, and a cached watch per service.

:class:`RegistryConfig` says where the registry is and how to talk to it
(flags ``--registry ...`` or ``SWITCHBOARD_*`` variables, see
:func:`add_registry_arguments`). :class:`ServiceWatcher` resolves one service,
then follows its Watch stream, keeping the instance set in a local cache; when
the registry goes away the cache stays as it was (calls go on) and the watcher
reconnects with jittered backoff, starting each time from a fresh Resolve so
a restarted or different registry replica can never leave a gap.

Example::

    config = RegistryConfig.from_env()          # SWITCHBOARD_REGISTRY=127.0.0.1:50051
    watcher = ServiceWatcher(registry_conn, "greeter", on_change=conn.set_discovered)
    watcher.start()
    await watcher.wait_synced(2.0)
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from services.runtime import errors
from services.runtime.client._retry import MethodSpec, describe, full_jitter
from services.runtime.config import Option, add_options, parse_address, read_options
from switchboard.registry.v1 import instance_pb2, registry_service_pb2

if TYPE_CHECKING:
    from services.runtime.client._client import Connection

__all__ = [
    "REGISTRY_SERVICE",
    "RegistryConfig",
    "ServiceWatcher",
    "add_registry_arguments",
    "parse_metadata",
]

log = logging.getLogger("services.runtime.discovery")

REGISTRY_SERVICE = "switchboard.registry.v1.RegistryService"
RESOLVE: MethodSpec[registry_service_pb2.ResolveRequest, registry_service_pb2.ResolveResponse] = (
    MethodSpec.of(f"/{REGISTRY_SERVICE}/Resolve")
)
WATCH: MethodSpec[registry_service_pb2.WatchRequest, registry_service_pb2.WatchResponse] = (
    MethodSpec.of(f"/{REGISTRY_SERVICE}/Watch")
)
_GONE = (instance_pb2.INSTANCE_EVENT_TYPE_REMOVED, instance_pb2.INSTANCE_EVENT_TYPE_EXPIRED)


@dataclass(frozen=True)
class RegistryConfig:
    """Where the registry is, how to authenticate, and what this instance announces.

    ``addresses`` are tried in turn. Example::

        RegistryConfig(addresses=("127.0.0.1:50051",), token="s3cret", ttl_s=10)
    """

    addresses: tuple[str, ...] = ()
    token: str | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    server_name: str | None = None
    ttl_s: float = 10.0
    version: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        """True when at least one registry address is configured."""
        return bool(self.addresses)

    def credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials for the registry channel, or None for plaintext."""
        if not (self.tls or self.ca_file or self.cert_file):
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file),
            private_key=_read(self.key_file),
            certificate_chain=_read(self.cert_file),
        )

    def channel_options(self) -> tuple[tuple[str, Any], ...]:
        """Channel options for the registry: reconnect quickly, and the TLS name to check.

        Reconnect backoff is capped at a quarter of the renewal interval (TTL/3), so
        an agent sees a restarted registry soon enough to register again within
        two intervals, jitter included.
        """
        cap_ms = max(50, int(self.ttl_s * 1000 / 12))
        options: tuple[tuple[str, Any], ...] = (
            ("grpc.initial_reconnect_backoff_ms", min(200, cap_ms)),
            ("grpc.max_reconnect_backoff_ms", cap_ms),
        )
        if self.server_name is not None:
            options += (("grpc.ssl_target_name_override", self.server_name),)
        return options

    def auth_metadata(self) -> tuple[tuple[str, str], ...]:
        """The ``authorization`` metadata the registry's write methods need."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RegistryConfig:
        """Read ``SWITCHBOARD_REGISTRY`` (comma-separated), ``SWITCHBOARD_TOKEN`` and the rest.

        Example: ``RegistryConfig.from_env({"SWITCHBOARD_REGISTRY": "a:1,b:2"}).addresses``
        is ``("a:1", "b:2")``.
        """
        return cls.from_args(argparse.Namespace(), environ)

    @classmethod
    def from_args(
        cls, ns: argparse.Namespace, environ: Mapping[str, str] | None = None
    ) -> RegistryConfig:
        """Build from parsed flags (see :func:`add_registry_arguments`), then the environment."""
        return cls(**read_options(ns, _OPTIONS, environ))


def parse_metadata(text: str) -> dict[str, str]:
    """``"zone=a,weight=2"`` → ``{"zone": "a", "weight": "2"}``; ValueError when malformed."""
    pairs = [item.partition("=") for item in text.split(",") if item.strip()]
    if any(not sep or not key.strip() for key, sep, _ in pairs):
        raise ValueError(f"invalid metadata {text!r}: expected key=value,key=value")
    return {key.strip(): value.strip() for key, _, value in pairs}


def _addresses(text: str) -> tuple[str, ...]:
    """``"a:1, b:2"`` → ``("a:1", "b:2")``, each checked as host:port at start, not at dial."""
    return tuple(parse_address(part) for part in text.split(",") if part.strip())


_OPTIONS: tuple[Option, ...] = (
    Option(
        "addresses",
        _addresses,
        "registry host:port list, comma-separated, tried in turn",
        flag="--registry",
        env="SWITCHBOARD_REGISTRY",
    ),
    Option(
        "token",
        str,
        "bearer token for the registry's write methods",
        flag="--registry-token",
        env="SWITCHBOARD_TOKEN",
    ),
    Option.yes_no(
        "tls",
        "dial the registry with TLS",
        flag="--registry-tls",
        env="SWITCHBOARD_REGISTRY_TLS",
    ),
    Option(
        "ca_file",
        Path,
        "PEM CA bundle that signed the registry's certificate",
        flag="--registry-ca",
        env="SWITCHBOARD_REGISTRY_CA",
    ),
    Option(
        "cert_file",
        Path,
        "PEM client certificate for mTLS",
        flag="--registry-cert",
        env="SWITCHBOARD_REGISTRY_CERT",
    ),
    Option(
        "key_file",
        Path,
        "PEM private key of --registry-cert",
        flag="--registry-key",
        env="SWITCHBOARD_REGISTRY_KEY",
    ),
    Option(
        "server_name",
        str,
        "TLS name to expect from the registry",
        flag="--registry-server-name",
        env="SWITCHBOARD_REGISTRY_SERVER_NAME",
    ),
    Option(
        "ttl_s",
        float,
        "lease TTL to ask for, seconds (renewed every third)",
        flag="--registry-ttl-s",
        env="SWITCHBOARD_REGISTRY_TTL_S",
    ),
    Option(
        "version",
        str,
        "version this instance announces",
        flag="--instance-version",
        env="SWITCHBOARD_INSTANCE_VERSION",
    ),
    Option(
        "metadata",
        parse_metadata,
        "labels this instance announces, key=value,key=value",
        flag="--instance-metadata",
        env="SWITCHBOARD_INSTANCE_METADATA",
    ),
)


def add_registry_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the registry flags (``--registry``, ``--registry-token``, ...) to a service binary.

    Each flag falls back to its ``SWITCHBOARD_*`` variable. Example::

        add_registry_arguments(parser)
        registry = RegistryConfig.from_args(parser.parse_args())
    """
    add_options(parser, "registry", _OPTIONS)


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


class ServiceWatcher:
    """Keeps the live instances of one service, from the registry, in a local cache.

    ``on_change`` receives the addresses every time the set changes. The
    watcher never gives up: after an error it waits (full jitter, capped) and
    starts again from a fresh Resolve.
    """

    def __init__(
        self,
        registry: Connection,
        service: str,
        on_change: Callable[[tuple[str, ...]], Awaitable[None]],
        *,
        backoff_base_s: float = 0.1,
        backoff_cap_s: float = 5.0,
        resolve_timeout_s: float = 2.0,
    ) -> None:
        self.service = service
        self.instances: dict[str, instance_pb2.Instance] = {}
        self.revision = 0
        self._registry = registry
        self._on_change = on_change
        self._backoff = (backoff_base_s, backoff_cap_s)
        self._resolve_timeout = resolve_timeout_s
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_error: str | None = None  # why the last Resolve or Watch failed

    def start(self) -> None:
        """Start following in the background (in a fresh context: no inherited deadline)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), context=contextvars.Context())

    async def wait_synced(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` seconds for the first answer from the registry."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._synced.wait()
        except TimeoutError:
            return False
        return True

    def why_empty(self) -> str:
        """Why the cache holds no instance: the registry's answer, or why it gave none."""
        where = f"the registry ({', '.join(self._registry.static_addresses)})"
        if self._last_error is not None:
            return f"{where} could not be asked: {self._last_error}"
        if self._synced.is_set():
            return f"{where} lists no live instance of it"
        return f"{where} has not answered yet"

    async def close(self) -> None:
        """Stop following; the cache keeps its last state."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._resolve()
                failures = 0
                await self._follow()
            except (errors.SwitchboardError, grpc.aio.AioRpcError) as err:
                self._last_error = (
                    describe(err) if isinstance(err, grpc.aio.AioRpcError) else str(err)
                )
                log.log(logging.DEBUG if failures else logging.INFO,
                        "watch of %s interrupted: %s", self.service, err)  # fmt: skip
            except Exception:  # never stop following: the cache would go stale for good
                log.exception("watch of %s failed; starting over", self.service)
            failures += 1
            await asyncio.sleep(full_jitter(failures, *self._backoff))

    async def _resolve(self) -> None:
        request = registry_service_pb2.ResolveRequest(service=self.service)
        answer = await self._registry.call(RESOLVE, request, timeout_s=self._resolve_timeout)
        self.instances = {i.instance_id: i for i in answer.instances}
        self.revision = answer.revision
        self._last_error = None
        await self._publish()
        self._synced.set()

    async def _follow(self) -> None:
        request = registry_service_pb2.WatchRequest(
            service=self.service, start_revision=self.revision
        )
        async for message in self._registry.stream(WATCH, request, timeout_s=None):
            self._apply(message)
            await self._publish()

    def _apply(self, message: registry_service_pb2.WatchResponse) -> None:
        if message.HasField("snapshot"):
            snapshot = message.snapshot
            self.instances = {i.instance_id: i for i in snapshot.instances}
            self.revision = snapshot.revision
            return
        event = message.event
        instance = event.instance
        if event.type in _GONE:
            self.instances.pop(instance.instance_id, None)
        else:
            self.instances[instance.instance_id] = instance
        self.revision = event.revision

    async def _publish(self) -> None:
        await self._on_change(tuple(sorted(i.address for i in self.instances.values())))
