"""A small etcd v3 client over grpc.aio: deadlines, retries within them, TLS, auth.

One channel balances every call over all endpoints with gRPC's round_robin.
Each call gets an absolute deadline (``time.monotonic()``); a call that fails
with UNAVAILABLE (member down, no leader, leader changed) is tried again on the
next member until the deadline, and whatever still fails becomes
``errors.Unavailable`` - never a hang, never INTERNAL. Renewals share one
LeaseKeepAlive stream (:class:`KeepAlives`); etcd answers a stream's requests
in order, so each answer settles the oldest waiting renewal of its lease.

Example::

    client = EtcdClient(EtcdConfig(("127.0.0.1:2379",)))
    await client.connect()
    deadline = client.deadline()
    reply = await client.call(client.kv.Range, rpc_pb2.RangeRequest(key=b"k"), deadline)
    await client.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections import deque
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

import grpc
import grpc.aio
from etcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc

from registry.store.etcd._config import EtcdConfig
from services.runtime import errors, remaining_time

__all__ = [
    "EtcdClient",
    "EtcdNotFound",
    "KeepAlives",
    "WatchCall",
    "channel_target",
    "unavailable",
]

_log = logging.getLogger("registry.etcd")

Reply = TypeVar("Reply")
Reply_co = TypeVar("Reply_co", covariant=True)
# Answer the caller this long before its own deadline (at least 0.1 s, or a tenth of the
# time it gave): a busy event loop must still get UNAVAILABLE back to it in time.
_MARGIN_S = 0.1
_MARGIN_SHARE = 0.1
# While the health probe says etcd cannot serve, a call gets this long at most: callers
# hear UNAVAILABLE at once instead of at their deadline, and a call still succeeds
# as soon as etcd is back (before the probe notices).
_DEGRADED_S = 0.3
# One attempt's bound when more time is left: a request a follower forwarded to a leader
# that just died is dropped silently, so it is tried again (on the new leader) instead
# of waiting out the whole deadline. Every call this store makes is safe to repeat.
_ATTEMPT_S = 0.5
_BACKOFF_S = (0.02, 0.05, 0.1, 0.2, 0.4)
_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.lb_policy_name", "round_robin"),
    # A member that comes back is used again within a second or two, not minutes.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
    ("grpc.keepalive_time_ms", 10_000),  # etcd refuses pings more often than every 5 s
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


WatchCall = grpc.aio.StreamStreamCall[rpc_pb2.WatchRequest, rpc_pb2.WatchResponse]


class EtcdNotFound(Exception):
    """etcd answered NOT_FOUND (e.g. a lease that no longer exists)."""


class _Unary(Protocol[Reply_co]):
    def __call__(
        self, request: Any, *, timeout: float | None = ..., metadata: Any = ...
    ) -> Awaitable[Reply_co]: ...


def channel_target(endpoints: tuple[str, ...]) -> str:
    """A gRPC target naming every endpoint, for round_robin: ``ipv4:a:1,b:2``.

    Host names are resolved once here (gRPC's dns resolver takes one name).
    Example: ``channel_target(("127.0.0.1:2379", "127.0.0.1:22379"))``.
    """
    v4: list[str] = []
    v6: list[str] = []
    for endpoint in endpoints:
        host, _, port = endpoint.rpartition(":")
        host = host.strip("[]")
        for address in _addresses(host):
            (v6 if ":" in address else v4).append(
                f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
            )
    if v4:
        return "ipv4:" + ",".join(dict.fromkeys(v4))
    return "ipv6:" + ",".join(dict.fromkeys(v6))


def _addresses(host: str) -> list[str]:
    """The IP literal itself, or the host name's addresses."""
    with contextlib.suppress(ValueError):
        return [str(ipaddress.ip_address(host))]
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as err:
        raise errors.Unavailable(f"cannot resolve etcd host {host!r}: {err}") from None
    return [str(info[4][0]) for info in infos]


def _credentials(config: EtcdConfig) -> grpc.ChannelCredentials | None:
    """TLS credentials when ``--etcd-ca`` is given (with a client certificate if any)."""
    if config.ca is None:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=config.ca.read_bytes(),
        private_key=config.key.read_bytes() if config.key else None,
        certificate_chain=config.cert.read_bytes() if config.cert else None,
    )


def unavailable(what: str) -> errors.Unavailable:
    """The one error a caller sees while etcd cannot serve: retry elsewhere or later."""
    return errors.Unavailable(
        f"the registry's etcd cluster is unreachable or has no quorum ({what})",
        reason="STORE_UNAVAILABLE",
        retry_delay=1.0,
    )


class EtcdClient:
    """Stubs for etcd's KV, Lease, Watch, Maintenance and Auth services on one channel."""

    def __init__(self, config: EtcdConfig) -> None:
        self.config = config
        self._channel: grpc.aio.Channel | None = None
        self._token: str | None = None
        self._auth_lock = asyncio.Lock()
        self.keepalives = KeepAlives(self)
        self.degraded = False  # set by the store's health probe

    async def connect(self) -> None:
        """Open the channel (no I/O yet: members are dialled on first use)."""
        target = await asyncio.to_thread(channel_target, self.config.endpoints)
        options = list(_CHANNEL_OPTIONS)
        credentials = _credentials(self.config)
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        else:
            host = self.config.endpoints[0].rpartition(":")[0].strip("[]")
            options.append(("grpc.default_authority", host))
            self._channel = grpc.aio.secure_channel(target, credentials, options=options)
        channel = self._channel
        self.kv = rpc_pb2_grpc.KVStub(channel)
        self.lease = rpc_pb2_grpc.LeaseStub(channel)
        self.watch = rpc_pb2_grpc.WatchStub(channel)
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(channel)
        self.auth = rpc_pb2_grpc.AuthStub(channel)

    async def close(self) -> None:
        """Close the keepalive stream and the channel."""
        await self.keepalives.close()
        if self._channel is not None:
            await self._channel.close()

    def deadline(self) -> float:
        """The absolute deadline of one registry call's work in etcd.

        ``config.timeout`` from now (a fraction of a second while etcd is known to be
        down), or sooner when the incoming call's deadline is nearer (minus a margin,
        so the caller hears UNAVAILABLE in time).
        """
        budget = _DEGRADED_S if self.degraded else self.config.timeout
        remaining = remaining_time()
        if remaining is not None:
            budget = min(budget, remaining - max(_MARGIN_S, remaining * _MARGIN_SHARE))
        return time.monotonic() + budget

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The auth token header, when etcd auth is on."""
        return (("token", self._token),) if self._token else ()

    async def call(
        self, method: _Unary[Reply], request: Any, deadline: float, *, retry: bool = True
    ) -> Reply:
        """One unary call within ``deadline``, tried again on UNAVAILABLE while time is left.

        Raises ``errors.Unavailable`` when it cannot succeed in time, and
        :class:`EtcdNotFound` when etcd says NOT_FOUND.
        """
        attempt = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise unavailable("deadline reached")
            await self._authenticate(deadline)
            timeout = _ATTEMPT_S if retry and left > 2 * _ATTEMPT_S else left
            try:
                return await method(request, timeout=timeout, metadata=self.metadata())
            except grpc.aio.AioRpcError as err:
                await self._on_error(err, retry, attempt, deadline)
            attempt += 1

    async def _on_error(
        self, err: grpc.aio.AioRpcError, retry: bool, attempt: int, deadline: float
    ) -> None:
        """Decide about a failed attempt: return to try again, or raise."""
        code = err.code()
        if code == grpc.StatusCode.NOT_FOUND:
            raise EtcdNotFound(err.details()) from None
        if code == grpc.StatusCode.UNAUTHENTICATED and self.config.user and attempt == 0:
            self._token = None  # the token expired: take a new one and try once more
            return
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and retry and time.monotonic() < deadline:
            return  # only this attempt's bound ran out
        if code != grpc.StatusCode.UNAVAILABLE or not retry:
            _log.warning("etcd call failed: %s %s", code.name, err.details())
            raise unavailable(code.name.lower()) from None
        pause = _BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)]
        if time.monotonic() + pause >= deadline:
            raise unavailable(err.details() or "unavailable") from None
        await asyncio.sleep(pause)

    async def _authenticate(self, deadline: float) -> None:
        """Take an auth token once (and again after it expired) when a user is configured."""
        config = self.config
        if config.user is None or self._token is not None:
            return
        async with self._auth_lock:
            if self._token is not None:
                return
            request = rpc_pb2.AuthenticateRequest(name=config.user, password=config.password or "")
            left = max(deadline - time.monotonic(), 0.01)
            try:
                reply = await self.auth.Authenticate(request, timeout=left)
            except grpc.aio.AioRpcError as err:
                _log.warning("etcd authentication failed: %s", err.details())
                raise unavailable("authentication failed") from None
            self._token = reply.token

    def open_watch(self) -> WatchCall:
        """A new Watch stream (its lifetime is the caller's)."""
        return self.watch.Watch(metadata=self.metadata())

    async def watch_ready(self, deadline: float) -> None:
        """Authenticate before opening a stream, when auth is on."""
        await self._authenticate(deadline)


class KeepAlives:
    """Lease renewals spread over a few LeaseKeepAlive streams, each reopened when it breaks.

    A lease always uses the same stream (etcd answers a stream in order, which is
    how an answer finds its request); several streams let etcd (and round_robin's
    members) work on renewals in parallel.

    Example: ``ttl = await client.keepalives.renew(lease, client.deadline())``.
    """

    STREAMS = 4

    def __init__(self, client: EtcdClient) -> None:
        self._streams = [_KeepAliveStream(client) for _ in range(self.STREAMS)]

    async def renew(self, lease: int, deadline: float) -> int:
        """Renew ``lease`` once; its TTL (<= 0: no such lease). Retried to the deadline."""
        return await self._streams[lease % len(self._streams)].renew(lease, deadline)

    async def close(self) -> None:
        """End every stream."""
        for stream in self._streams:
            await stream.close()


class _KeepAliveStream:
    """Renewals multiplexed on one LeaseKeepAlive stream."""

    def __init__(self, client: EtcdClient) -> None:
        self._client = client
        self._call: grpc.aio.StreamStreamCall[Any, Any] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[int, deque[asyncio.Future[int]]] = {}
        self._write_lock = asyncio.Lock()
        self._last_answer = time.monotonic()

    async def renew(self, lease: int, deadline: float) -> int:
        """Renew ``lease`` once; its TTL (<= 0: no such lease). Retried to the deadline."""
        attempt = 0
        while True:
            try:
                return await self._renew_once(lease, deadline)
            except _StreamBroken as broken:
                pause = _BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)]
                if time.monotonic() + pause >= deadline:
                    raise unavailable(str(broken)) from None
                await asyncio.sleep(pause)
            attempt += 1

    async def _renew_once(self, lease: int, deadline: float) -> int:
        call = await self._open(deadline)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(lease, deque()).append(future)
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.001)):
                async with self._write_lock:  # one write at a time on a grpc.aio stream
                    await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=lease))
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as err:
            self._reset(call, "write failed")
            raise _StreamBroken(str(err)) from None
        except TimeoutError:
            self._reset(call, "write stuck")  # the next stream goes elsewhere
            raise unavailable("lease renewal timed out") from None
        try:
            return await asyncio.wait_for(future, max(deadline - time.monotonic(), 0.001))
        except TimeoutError:
            if time.monotonic() - self._last_answer > 1.0:
                self._reset(call, "no answer")  # a stuck member: the next stream goes elsewhere
            raise unavailable("lease renewal timed out") from None

    async def _open(self, deadline: float) -> grpc.aio.StreamStreamCall[Any, Any]:
        if self._call is None:
            await self._client.watch_ready(deadline)
            self._call = self._client.lease.LeaseKeepAlive(metadata=self._client.metadata())
            self._last_answer = time.monotonic()
            self._reader = asyncio.create_task(self._read(self._call), name="etcd-keepalive")
        return self._call

    async def _read(self, call: grpc.aio.StreamStreamCall[Any, Any]) -> None:
        """Settle the oldest waiting renewal of each answered lease, until the stream ends."""
        try:
            async for reply in call:
                self._last_answer = time.monotonic()
                waiting = self._waiting.get(reply.ID)
                if not waiting:
                    continue
                future = waiting.popleft()
                if not waiting:
                    del self._waiting[reply.ID]
                if not future.done():
                    future.set_result(reply.TTL)
            self._reset(call, "stream ended")
        except grpc.aio.AioRpcError as err:
            self._reset(call, err.details() or err.code().name)
        except asyncio.CancelledError:
            self._reset(call, "closed")

    def _reset(self, call: grpc.aio.StreamStreamCall[Any, Any], why: str) -> None:
        """Forget a broken stream; every renewal waiting on it is told to try again."""
        if self._call is not call:
            return
        self._call = None
        call.cancel()
        waiting, self._waiting = self._waiting, {}
        for futures in waiting.values():
            for future in futures:
                if not future.done():
                    future.set_exception(_StreamBroken(why))

    async def close(self) -> None:
        """End the stream and its reader."""
        if self._call is not None:
            self._reset(self._call, "closed")
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


class _StreamBroken(Exception):
    """The keepalive stream broke before this renewal was answered."""
