"""Calling a service by name: discovery, one balanced channel, deadlines and retries.

A :class:`Client` is made once per process. ``await client.connect("greeter")``
returns the service's :class:`Connection`: it resolves the name through the
registry (then follows its Watch), or uses static addresses, or both (static
ones stand in while the registry knows no instance). Every call has a
deadline (default 5 s, never later than the deadline of the call being
handled, minus a margin), carries the handled call's ``x-request-id``, and is
retried as its contract declares (see :mod:`services.runtime.client._retry`) within that deadline.
Failures surface as :mod:`services.runtime.errors` types; a spent deadline is
always :class:`~services.runtime.errors.DeadlineExceeded`.

Example::

    async with Client(ClientConfig(registry=RegistryConfig(("127.0.0.1:50051",)))) as client:
        greeter = await client.connect("greeter")
        reply = await greeter.call("/helloworld.Greeter/SayHello",
                                   HelloRequest(name="Ada"), timeout_s=2.0)
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, overload

import grpc
from google.protobuf.message import Message

from services.runtime import context as _context
from services.runtime import errors
from services.runtime.auth import CALLER_KEY, TokenSource, caller_subject
from services.runtime.client._channel import ChannelHolder
from services.runtime.client._discovery import RegistryConfig, ServiceWatcher
from services.runtime.client._retry import (
    MethodSpec,
    RetrySettings,
    describe,
    is_retryable,
    map_error,
    retry_after_failure,
)
from services.runtime.metrics import DISCOVERY_AGE, ClientMethodMetrics
from services.runtime.tracing import end_span, inject, start_client_span

__all__ = ["Client", "ClientConfig", "Connection", "open_registry"]

log = logging.getLogger("services.runtime.client")

ReqT = TypeVar("ReqT", bound=Message)
RespT = TypeVar("RespT", bound=Message)
Metadata = Sequence[tuple[str, str]]

_REQUEST_ID_KEY = _context.REQUEST_ID_KEY
_current_request_id = _context.current_request_id
_current_deadline = _context.current_deadline
_monotonic = time.monotonic
_NO_METADATA = grpc.aio.Metadata()
_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED  # what a call ends with when its caller cancels it

DEFAULT_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    # Come back quickly after an instance or the registry restarts.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5000),
    # Notice a peer that vanished without closing its connections. gRPC core (1.85)
    # times a keepalive ping out after grpc.http2.ping_timeout_ms (default: a minute),
    # not keepalive_timeout_ms, so both are set; an idle watch keeps pinging.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.ping_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
)


@dataclass(frozen=True)
class ClientConfig:
    """How a client finds services and how patient it is.

    ``static`` maps a service name to addresses used with no registry, or while
    the registry knows no instance. Example::

        ClientConfig(static={"greeter": ("127.0.0.1:5001", "127.0.0.1:5002")}, default_timeout_s=2)
    """

    registry: RegistryConfig = field(default_factory=RegistryConfig)
    static: Mapping[str, Sequence[str]] = field(default_factory=dict)
    default_timeout_s: float = 5.0
    retry: RetrySettings = field(default_factory=RetrySettings)
    propagation_margin_s: float = 0.02
    connect_timeout_s: float = 2.0
    close_grace_s: float = 5.0
    discovery_backoff_cap_s: float = 5.0
    health_check: bool = True  # round_robin skips instances not SERVING (grpc.health.v1 Watch)
    credentials: grpc.ChannelCredentials | None = None
    channel_options: tuple[tuple[str, Any], ...] = DEFAULT_CHANNEL_OPTIONS
    token: str | None = field(default=None, repr=False)  # bearer token for every call
    token_file: Path | None = None  # or a file holding it, re-read when it changes
    metrics: bool = True  # grpc_client_* and switchboard_client_* metrics (see /metrics)

    def token_source(self) -> TokenSource:
        """Where this client's bearer token comes from (see :class:`TokenSource`)."""
        return TokenSource(self.token, self.token_file)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClientConfig:
        """The registry from ``SWITCHBOARD_REGISTRY`` etc., static addresses from
        ``SWITCHBOARD_ADDRESSES_<SERVICE>`` (``-`` written ``_``), the default
        timeout from ``SWITCHBOARD_CLIENT_TIMEOUT_S``.

        Example: ``SWITCHBOARD_ADDRESSES_USER=127.0.0.1:5001,127.0.0.1:5002``.
        """
        env = os.environ if environ is None else environ
        prefix = "SWITCHBOARD_ADDRESSES_"
        static = {
            key.removeprefix(prefix).lower().replace("_", "-"): tuple(
                a.strip() for a in value.split(",") if a.strip()
            )
            for key, value in env.items()
            if key.startswith(prefix) and value.strip()
        }
        timeout = float(env.get("SWITCHBOARD_CLIENT_TIMEOUT_S") or cls.default_timeout_s)
        token_file = env.get("SWITCHBOARD_AUTH_TOKEN_FILE") or None
        return cls(
            registry=RegistryConfig.from_env(env),
            static=static,
            default_timeout_s=timeout,
            credentials=_client_tls(env),
            token=None if token_file else env.get("SWITCHBOARD_AUTH_TOKEN") or None,
            token_file=Path(token_file) if token_file else None,
        )


def _client_tls(env: Mapping[str, str]) -> grpc.ChannelCredentials | None:
    """TLS (mTLS with a certificate) to services from ``SWITCHBOARD_CLIENT_TLS_CA/CERT/KEY``.

    A service calling another presents its own certificate: that is its identity.
    """
    paths = [env.get(f"SWITCHBOARD_CLIENT_TLS_{part}") for part in ("CA", "CERT", "KEY")]
    if not any(paths):
        return None
    ca, cert, key = (Path(p).read_bytes() if p else None for p in paths)
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )


class Connection:
    """Calls to one service over its current channel.

    Made by :meth:`Client.connect`. ``call`` is for unary methods, ``stream``
    for server-streaming ones; both take a :class:`MethodSpec` (typed) or a
    full method name. A keyed write whose request has an empty ``request_id``
    gets a fresh one (set on the request object), so its retries apply once.
    """

    def __init__(
        self,
        service: str,
        holder: ChannelHolder,
        config: ClientConfig,
        *,
        metadata: Metadata = (),
        static: Sequence[str] = (),
        token: TokenSource | None = None,
    ) -> None:
        self.service = service
        self._holder = holder
        self._timeout = config.default_timeout_s
        self._margin = config.propagation_margin_s
        self._retry = config.retry
        self._per_attempt = config.retry.per_attempt_timeout_s
        self._base_md: tuple[tuple[str, str], ...] = tuple(metadata)
        self._token = token if token is not None and token.enabled else None
        self._static = tuple(static)
        self._discovered: tuple[str, ...] = ()
        self._ready = asyncio.Event()
        self._watcher: ServiceWatcher | None = None
        self._metrics = config.metrics
        self._discovered_at = _monotonic()

    @property
    def addresses(self) -> tuple[str, ...]:
        """The addresses the current channel balances over."""
        return self._holder.addresses

    @property
    def static_addresses(self) -> tuple[str, ...]:
        """The addresses given by configuration (the registry's own, for its connection)."""
        return self._static

    def why_unknown(self) -> str:
        """Why no instance is known, naming where the client looked and what went wrong.

        Example: ``no instance of user is known: the registry (127.0.0.1:59999) could not be
        asked: UNAVAILABLE: failed to connect to all addresses; ... Connection refused``.
        """
        what = f"no instance of {self.service} is known"
        if self._watcher is not None:
            return f"{what}: {self._watcher.why_empty()}"
        if not self._static:
            return f"{what}: no registry is configured and no static address was given"
        return what

    @property
    def channel(self) -> grpc.aio.Channel:
        """The current channel, for streams the generic calls do not cover (KeepAlive).

        Raises :class:`errors.Unavailable` while no address is known.
        """
        live = self._holder.live
        if live is None:
            raise errors.Unavailable(self.why_unknown())
        return live.channel

    async def wait_ready(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` seconds until at least one address is known."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._ready.wait()
        except TimeoutError:
            return False
        return True

    async def set_discovered(self, addresses: tuple[str, ...]) -> None:
        """Take the registry's address set (static addresses stand in for an empty one)."""
        self._discovered = addresses
        if self._metrics and self._watcher is not None:
            self._discovered_at = _monotonic()
            DISCOVERY_AGE.labels(self.service).set_function(self._discovery_age)
        await self._apply(addresses or self._static)

    def _discovery_age(self) -> float:
        return _monotonic() - self._discovered_at

    async def _apply(self, addresses: Sequence[str]) -> None:
        await self._holder.update(addresses)
        if self._holder.live is not None:
            self._ready.set()

    def watch(self, watcher: ServiceWatcher) -> None:
        """Follow ``watcher`` (started here, closed with the connection)."""
        self._watcher = watcher
        watcher.start()

    async def wait_synced(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the registry's first answer (True at once without one)."""
        if self._watcher is None or await self._watcher.wait_synced(timeout_s):
            return True
        log.warning("registry has not answered for %s yet; using what is cached", self.service)
        return False

    async def close(self) -> None:
        """Stop discovery and close the channels (in-flight calls are cancelled)."""
        if self._watcher is not None:
            await self._watcher.close()
        await self._holder.close()

    def _deadline(self, now: float, timeout: float | None) -> float:
        deadline = now + (self._timeout if timeout is None else timeout)
        inherited = _current_deadline()
        if inherited is not None and inherited - self._margin < deadline:
            return inherited - self._margin
        return deadline

    def _metadata(self, extra: Metadata | None) -> Metadata | None:
        request_id = _current_request_id()
        token = self._token.metadata() if self._token is not None else ()
        if request_id is None and not extra and not token:
            return self._base_md or None
        md = [*self._base_md, *token, *(extra or ())]
        if request_id is not None:
            md.append((_REQUEST_ID_KEY, request_id))
            # Inside a handler: name the end user we act for, for the callee's audit log.
            caller = caller_subject()
            if caller is not None:
                md.append((CALLER_KEY, caller))
        return md

    @overload
    async def call(
        self,
        method: MethodSpec[ReqT, RespT],
        request: ReqT,
        *,
        timeout_s: float | None = None,
        metadata: Metadata | None = None,
    ) -> RespT: ...

    @overload
    async def call(
        self,
        method: str,
        request: Message,
        *,
        timeout_s: float | None = None,
        metadata: Metadata | None = None,
    ) -> Any: ...

    async def call(
        self,
        method: MethodSpec[Any, Any] | str,
        request: Any,
        *,
        timeout_s: float | None = None,
        metadata: Metadata | None = None,
    ) -> Any:
        """Make a unary call; retried per the method's policy within one deadline.

        ``timeout_s`` defaults to the client's; inside a handler the
        incoming call's remaining deadline caps it. Raises a
        :class:`errors.SwitchboardError` subclass on failure.

        Example: ``await conn.call(GET_USER, GetUserRequest(id="u1"), timeout_s=1.0)``.
        """
        spec = method if isinstance(method, MethodSpec) else MethodSpec.of(method)
        if spec.auto_idempotency_key and not request.request_id:
            request.request_id = uuid.uuid4().hex
        now = _monotonic()
        deadline = self._deadline(now, timeout_s)
        attempt_timeout = deadline - now
        if self._per_attempt is not None and self._per_attempt < attempt_timeout:
            attempt_timeout = self._per_attempt
        if attempt_timeout <= 0:
            raise errors.DeadlineExceeded(f"deadline exceeded before calling {spec.path}")
        md = self._metadata(metadata)
        m = ClientMethodMetrics.of(spec.path) if self._metrics else None
        span = start_client_span(spec.path)
        if span is not None:
            md = list(md or ())
            inject(span, md)
        if m is not None:
            m.started.inc()
        code = _CANCELLED
        try:
            result = await self._call(spec, request, md, deadline, attempt_timeout, m)
            code = _OK
            return result
        except errors.SwitchboardError as err:
            code = err.code
            raise
        finally:
            if m is not None:
                m.handled(code, _monotonic() - now)
            if span is not None:
                end_span(span, code, server=False)

    async def _call(
        self,
        spec: MethodSpec[Any, Any],
        request: Message,
        md: Metadata | None,
        deadline: float,
        attempt_timeout: float,
        m: ClientMethodMetrics | None,
    ) -> Any:
        """The first attempt, then the retries its failure allows."""
        try:
            live = self._holder.live
            if live is None:
                raise self._no_instance()
            result = await live.unary(spec)(request, timeout=attempt_timeout, metadata=md)
        except grpc.aio.AioRpcError as err:
            if m is not None:
                m.attempt(err.code())
            if not is_retryable(err, spec, deadline):
                log.debug("%s attempt 1 failed (%s); not retried", spec.path, describe(err))
                raise map_error(err, deadline, 1) from err
            return await self._retry_call(err, spec, request, md, deadline, m)
        if m is not None:
            m.attempt(_OK)
        return result

    async def _retry_call(
        self,
        err: grpc.aio.AioRpcError,
        spec: MethodSpec[Any, Any],
        request: Message,
        md: Metadata | None,
        deadline: float,
        m: ClientMethodMetrics | None,
    ) -> Any:
        last = [err.code()]

        async def attempt(attempt_timeout: float) -> Any:
            if m is not None:
                m.retry(last[0])
            try:
                live = self._holder.live
                if live is None:
                    raise self._no_instance()
                result = await live.unary(spec)(request, timeout=attempt_timeout, metadata=md)
            except grpc.aio.AioRpcError as failed:
                last[0] = failed.code()
                if m is not None:
                    m.attempt(last[0])
                raise
            if m is not None:
                m.attempt(_OK)
            return result

        return await retry_after_failure(err, attempt, spec, deadline, self._retry)

    def _no_instance(self) -> grpc.aio.AioRpcError:
        # Shaped like a transport failure so the retry policy treats it the same.
        return grpc.aio.AioRpcError(
            grpc.StatusCode.UNAVAILABLE,
            _NO_METADATA,
            _NO_METADATA,
            details=self.why_unknown(),
        )

    async def stream(
        self,
        method: MethodSpec[Any, RespT] | str,
        request: Message,
        *,
        timeout_s: float | None = None,
        metadata: Metadata | None = None,
    ) -> AsyncIterator[RespT]:
        """Iterate over a server-streaming call's messages (not retried: resume it yourself).

        Unlike unary calls a stream has no default deadline; ``timeout_s`` or the
        handled call's deadline bound it when present.

        Example: ``async for event in conn.stream(WATCH_USERS, WatchUsersRequest()): ...``
        """
        spec = method if isinstance(method, MethodSpec) else MethodSpec.of(method)
        deadline = self._stream_deadline(timeout_s)
        live = self._holder.live
        if live is None:
            raise errors.Unavailable(self.why_unknown())
        remaining = None if deadline is None else deadline - _monotonic()
        if remaining is not None and remaining <= 0:
            raise errors.DeadlineExceeded(f"deadline exceeded before calling {spec.path}")
        call = live.unary_stream(spec)(
            request, timeout=remaining, metadata=self._metadata(metadata)
        )
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as err:
            raise map_error(err, deadline or float("inf"), 1) from err
        finally:
            call.cancel()

    def _stream_deadline(self, timeout: float | None) -> float | None:
        inherited = _current_deadline()
        own = None if timeout is None else _monotonic() + timeout
        if inherited is None:
            return own
        inherited -= self._margin
        return inherited if own is None else min(own, inherited)


async def open_registry(config: RegistryConfig, client: ClientConfig | None = None) -> Connection:
    """A connection to the registry: its addresses tried in turn (pick_first), with the token.

    Example: ``conn = await open_registry(RegistryConfig(("127.0.0.1:50051",)))``.
    """
    settings = client or ClientConfig(registry=config)
    holder = ChannelHolder(
        "registry",
        lb_policy="pick_first",
        health_check=False,
        credentials=config.credentials(),
        options=tuple((dict(settings.channel_options) | dict(config.channel_options())).items()),
        close_grace_s=settings.close_grace_s,
    )
    # The registry's own write token when one is set, else this client's bearer token.
    static_token = config.auth_metadata()
    conn = Connection(
        "registry",
        holder,
        settings,
        metadata=static_token,
        static=config.addresses,
        token=None if static_token else settings.token_source(),
    )
    await conn.set_discovered(())
    return conn


class Client:
    """The process's entry point for calling services by name.

    Example::

        async with Client.from_env() as client:
            greeter = GreeterClient(await client.connect("greeter"))
            reply = await greeter.say_hello("ada")
    """

    def __init__(self, config: ClientConfig | None = None) -> None:
        self.config = config or ClientConfig()
        self._connections: dict[str, Connection] = {}
        self._registry: Connection | None = None
        self._token = self.config.token_source()
        self._lock = asyncio.Lock()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Client:
        """A client configured from ``SWITCHBOARD_*`` variables (see :class:`ClientConfig`)."""
        return cls(ClientConfig.from_env(environ))

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def registry(self) -> Connection:
        """The connection to the registry; :class:`errors.FailedPrecondition` if none is set."""
        if not self.config.registry.enabled:
            raise errors.FailedPrecondition("no registry address is configured")
        if self._registry is None:
            self._registry = await open_registry(self.config.registry, self.config)
        return self._registry

    async def connect(self, service: str, *, wait_s: float | None = None) -> Connection:
        """The connection to ``service`` (made once; later calls return the same one).

        Waits up to ``wait_s`` (default ``connect_timeout_s``) for the registry's
        first answer; when it does not come the connection still works from
        static addresses and picks instances up as soon as the registry answers.
        """
        async with self._lock:  # held only to create: waiting happens outside
            conn = self._connections.get(service)
            if conn is None:
                conn = await self._open(service)
                self._connections[service] = conn
        await conn.wait_synced(self.config.connect_timeout_s if wait_s is None else wait_s)
        return conn

    async def _open(self, service: str) -> Connection:
        config = self.config
        holder = ChannelHolder(
            service,
            health_check=config.health_check,
            credentials=config.credentials,
            options=config.channel_options,
            close_grace_s=config.close_grace_s,
        )
        static = tuple(config.static.get(service, ()))
        conn = Connection(service, holder, config, static=static, token=self._token)
        await conn.set_discovered(())
        if config.registry.enabled:
            registry = await self.registry()
            backoff = config.discovery_backoff_cap_s
            conn.watch(
                ServiceWatcher(registry, service, conn.set_discovered, backoff_cap_s=backoff)
            )
        return conn

    async def close(self) -> None:
        """Close every connection, then the registry's."""
        connections, self._connections = list(self._connections.values()), {}
        for conn in connections:
            await conn.close()
        registry, self._registry = self._registry, None
        if registry is not None:
            await registry.close()
