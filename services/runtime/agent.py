"""The registration agent: a server Lifecycle hook that keeps this instance in the registry.

Once the server listens, :meth:`RegistrationAgent.started` registers the
instance (its real port, an advertised host, a per-process instance id,
version and metadata) and keeps the lease alive every TTL/3 over the
KeepAlive stream, falling back to unary Heartbeat when the stream breaks.
When the lease is gone (NOT_FOUND: it expired, or the registry restarted) the
agent registers again: first after a random fraction of the renewal interval,
then with full-jitter exponential backoff, so a registry restart with 1,000
instances is no stampede. The server keeps serving whatever the registry does.
:meth:`stopping` deregisters within a bounded time before the server drains.

Example::

    agent = RegistrationAgent.for_server("greeter", server_config, RegistryConfig.from_env())
    await serve([greeter_service], server_config, hooks=[agent])
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.metadata
import logging
import os
import random
import re
import secrets
import socket
from collections.abc import Callable, Mapping
from typing import Any

import grpc
from google.protobuf import duration_pb2
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

from services.runtime import errors
from services.runtime.client._client import Connection, open_registry
from services.runtime.client._discovery import REGISTRY_SERVICE, RegistryConfig
from services.runtime.client._retry import NO_RETRY, MethodSpec, full_jitter
from services.runtime.config import ServerConfig
from services.runtime.server._http import current_http_address
from switchboard.registry.v1 import instance_pb2, registry_service_pb2

__all__ = ["METRICS_ADDRESS_KEY", "RegistrationAgent", "default_instance_id"]

METRICS_ADDRESS_KEY = "metrics_address"
"""Instance metadata key: the ``host:port`` of the instance's HTTP side port (``/metrics``)."""

log = logging.getLogger("services.runtime.agent")

_R = registry_service_pb2
REGISTER: MethodSpec[_R.RegisterRequest, _R.RegisterResponse] = MethodSpec.of(
    f"/{REGISTRY_SERVICE}/Register"
).with_policy(NO_RETRY)  # the agent's own backoff loop retries
HEARTBEAT: MethodSpec[_R.HeartbeatRequest, _R.HeartbeatResponse] = MethodSpec.of(
    f"/{REGISTRY_SERVICE}/Heartbeat"
).with_policy(NO_RETRY)
DEREGISTER: MethodSpec[_R.DeregisterRequest, _R.DeregisterResponse] = MethodSpec.of(
    f"/{REGISTRY_SERVICE}/Deregister"
)
KEEPALIVE_PATH = f"/{REGISTRY_SERVICE}/KeepAlive"
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]+")


def default_instance_id() -> str:
    """``"<hostname>-<pid>-<random>"``, within the registry's charset and length.

    Example: ``default_instance_id()`` → ``"web-1-4242-9f3a1c"``.
    """
    host = _ID_UNSAFE.sub("-", socket.gethostname())[:96] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


class RegistrationAgent:
    """Registers one service instance and keeps it registered (a ``Lifecycle`` hook).

    ``address`` turns the bound port into the ``host:port`` to announce
    (default ``<advertise_host>:<port>``). ``registrations`` and ``renewals``
    count successes; ``lease_id`` is the current lease (None while unregistered).

    Example::

        agent = RegistrationAgent("greeter", RegistryConfig(("127.0.0.1:50051",)),
                                  advertise_host="127.0.0.1", version="1.2.0")
        await agent.started(port)   # ...serve...   await agent.stopping()
    """

    def __init__(
        self,
        service: str,
        registry: RegistryConfig,
        *,
        advertise_host: str | None = None,
        address: Callable[[int], str] | None = None,
        instance_id: str | None = None,
        version: str | None = None,
        metadata: Mapping[str, str] | None = None,
        ttl_s: float | None = None,
        first_attempt_timeout_s: float = 1.0,
        call_timeout_s: float = 2.0,
        deregister_timeout_s: float = 1.0,
        backoff_base_s: float = 0.2,
        backoff_cap_s: float = 10.0,
    ) -> None:
        host = advertise_host or socket.gethostname()
        self.service = service
        self.instance_id = instance_id or default_instance_id()
        self.version = (registry.version if version is None else version) or package_version()
        self.metadata = dict(registry.metadata if metadata is None else metadata)
        self.address = ""
        self.lease_id: str | None = None
        self.ttl_s = registry.ttl_s if ttl_s is None else ttl_s
        self.registrations = 0
        self.renewals = 0
        self._registry = registry
        self._requested_ttl = self.ttl_s
        self._address = address or (lambda port: _join(host, port))
        self._timeouts = (first_attempt_timeout_s, call_timeout_s, deregister_timeout_s)
        self._backoff = (backoff_base_s, backoff_cap_s)
        self._conn: Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._registered = asyncio.Event()

    @classmethod
    def for_server(
        cls, service: str, server: ServerConfig, registry: RegistryConfig, **options: Any
    ) -> RegistrationAgent:
        """An agent announcing ``server.advertise_address(port)`` (wildcard → host name)."""
        return cls(service, registry, address=server.advertise_address, **options)

    @property
    def interval_s(self) -> float:
        """How often the lease is renewed: a third of the granted TTL."""
        return self.ttl_s / 3

    async def wait_registered(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for a registration (the current one, if any)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._registered.wait()
        except TimeoutError:
            return False
        return True

    async def started(self, port: int) -> None:
        """Register (one bounded attempt), then keep registered in the background.

        The server's HTTP side port, when on, is announced as metadata
        ``metrics_address`` (what the registry's Prometheus service discovery lists).
        """
        self.address = self._address(port)
        metrics_address = current_http_address()
        if metrics_address is not None:
            self.metadata.setdefault(METRICS_ADDRESS_KEY, metrics_address)
        if not self._registry.enabled:
            log.info("no registry configured: %s is not registered", self.address)
            return
        self._conn = await open_registry(self._registry)
        try:
            await self._register(self._timeouts[0])
        except errors.SwitchboardError as err:
            log.warning("registry unreachable (%s); serving anyway, will keep trying", err)
        # A fresh context: the loop must not inherit any call's deadline or request id.
        self._task = asyncio.create_task(self._run(), context=contextvars.Context())

    async def stopping(self) -> None:
        """Stop renewing and deregister, bounded by ``deregister_timeout_s``."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await self._deregister(conn)
        finally:
            await conn.close()

    async def _deregister(self, conn: Connection) -> None:
        lease, self.lease_id = self.lease_id, None
        self._registered.clear()
        if lease is None:
            return
        request = _R.DeregisterRequest(lease_id=lease)
        try:
            await conn.call(DEREGISTER, request, timeout_s=self._timeouts[2])
            log.info("deregistered %s/%s", self.service, self.instance_id)
        except errors.SwitchboardError as err:
            log.warning("deregistration of %s failed: %s", self.instance_id, err)

    # --- background loop ---------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                if self.lease_id is None:
                    await self._register_with_backoff()
                await self._renew_until_lost()
                self._lost_lease()
                failures = 0
            except Exception:  # never let the agent die: the server must stay registered
                failures += 1
                log.exception("registration agent error; carrying on")
                await asyncio.sleep(full_jitter(failures, *self._backoff))

    def _lost_lease(self) -> None:
        self.lease_id = None
        self._registered.clear()

    async def _register_with_backoff(self) -> None:
        # After a registry restart every instance gets NOT_FOUND within one
        # interval: spread the first re-registration over another one.
        if self.registrations:
            await asyncio.sleep(random.uniform(0.0, self.interval_s))
        base, cap = self._backoff
        retrying = AsyncRetrying(
            wait=wait_random_exponential(multiplier=base, max=cap),  # full jitter
            retry=retry_if_exception_type(errors.SwitchboardError),
            before_sleep=self._log_failure,
            reraise=True,
        )
        await retrying(self._register, self._timeouts[1])

    def _log_failure(self, state: RetryCallState) -> None:
        outcome = state.outcome
        err = outcome.exception() if outcome is not None else None
        level = logging.ERROR if isinstance(err, _CONFIG_ERRORS) else logging.INFO
        log.log(level, "registration attempt %d failed: %s", state.attempt_number, err)

    async def _register(self, timeout_s: float) -> None:
        assert self._conn is not None
        request = _R.RegisterRequest(instance=self._instance(), ttl=_duration(self._requested_ttl))
        answer = await self._conn.call(REGISTER, request, timeout_s=timeout_s)
        self.lease_id = answer.lease_id
        self.ttl_s = answer.ttl.ToNanoseconds() / 1e9 or self._requested_ttl
        self.registrations += 1
        self._registered.set()
        log.info(
            "registered %s/%s at %s (ttl %.1f s)",
            self.service, self.instance_id, self.address, self.ttl_s,
        )  # fmt: skip

    def _instance(self) -> instance_pb2.Instance:
        return instance_pb2.Instance(
            service=self.service,
            instance_id=self.instance_id,
            address=self.address,
            version=self.version,
            metadata=self.metadata,
        )

    async def _renew_until_lost(self) -> None:
        """Renew over KeepAlive (Heartbeat while it is broken); return once the lease is gone."""
        while self.lease_id is not None:
            if await self._keep_alive(self.lease_id):
                log.info("lease of %s is gone: registering again", self.instance_id)
                return
            if not await self._heartbeat_until_answered(self.lease_id):
                return
            # Renewed just now: the stream is tried again when the next renewal is due.
            await asyncio.sleep(self._jittered_interval())

    async def _keep_alive(self, lease: str) -> bool:
        """Renew ``lease`` every interval over one stream; True when the registry says
        the lease is gone (NOT_FOUND), False when the stream broke or ended."""
        assert self._conn is not None
        try:
            stream = self._conn.channel.stream_stream(
                KEEPALIVE_PATH,
                request_serializer=_R.KeepAliveRequest.SerializeToString,
                response_deserializer=_R.KeepAliveResponse.FromString,
            )(metadata=self._registry.auth_metadata() or None)
        except errors.SwitchboardError as err:
            log.debug("no KeepAlive stream (%s): falling back to Heartbeat", err)
            return False
        try:
            await self._renew_over(stream, lease)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError, TimeoutError) as err:
            log.debug("KeepAlive ended (%r): falling back to Heartbeat", err)
        try:
            return stream.done() and await stream.code() == grpc.StatusCode.NOT_FOUND
        finally:
            stream.cancel()

    async def _renew_over(self, stream: Any, lease: str) -> None:
        """Write a renewal, read its answer, sleep an interval; until the stream ends."""
        while not stream.done():
            await stream.write(_R.KeepAliveRequest(lease_id=lease))
            async with asyncio.timeout(self._timeouts[1]):
                answer = await stream.read()
            if not isinstance(answer, _R.KeepAliveResponse):
                return  # the registry ended the stream
            self._renewed(answer.ttl)
            await asyncio.sleep(self._jittered_interval())

    async def _heartbeat_until_answered(self, lease: str) -> bool:
        """Heartbeat until the registry answers: True when renewed, False when lost.

        The stream just broke, so the registry may have restarted: ask soon and
        then every quarter interval at most (the lease still has two intervals
        left), so a restart is noticed in time to register again within two.
        """
        assert self._conn is not None
        request = _R.HeartbeatRequest(lease_id=lease)
        attempt = 0
        while True:
            await asyncio.sleep(self._retry_delay(attempt))
            attempt += 1
            try:
                answer = await self._conn.call(HEARTBEAT, request, timeout_s=self._timeouts[1])
            except errors.NotFound:
                log.info("lease of %s is gone: registering again", self.instance_id)
                return False
            except errors.SwitchboardError as err:
                log.debug("heartbeat failed: %s", err)
                continue
            self._renewed(answer.ttl)
            return True

    def _renewed(self, ttl: duration_pb2.Duration) -> None:
        self.renewals += 1
        self.ttl_s = ttl.ToNanoseconds() / 1e9 or self.ttl_s

    def _jittered_interval(self) -> float:
        # 80-100 %: instances that started together drift apart instead of renewing in
        # lockstep, and a renewal is never later than the interval.
        return self.interval_s * random.uniform(0.8, 1.0)

    def _retry_delay(self, attempt: int) -> float:
        """Full-jitter exponential delay from 50 ms, capped at a quarter interval."""
        return random.uniform(0.5, 1.0) * min(self.interval_s / 4, 0.05 * 2.0**attempt)


_CONFIG_ERRORS = (
    errors.InvalidArgument,
    errors.Unauthenticated,
    errors.PermissionDenied,
)


def _duration(seconds: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def package_version() -> str:
    """The installed Switchboard version: what an instance announces unless told otherwise."""
    try:
        return importlib.metadata.version("switchboard")
    except importlib.metadata.PackageNotFoundError:
        return ""
