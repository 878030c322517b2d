"""One grpc.aio channel per service over its address list, balanced by gRPC core.

There is no hand-written pool: the channel's target lists every instance
(``ipv4:10.0.0.1:5001,10.0.0.2:5001``) and gRPC's ``round_robin`` policy
spreads calls over them and skips an instance whose connection fails or whose
grpc.health.v1 status is not SERVING (client-side health checking, gRFC A17:
a draining server drops out at once; a server without the health service
counts as healthy). gRPC's own retryPolicy is not enabled. When the
set of instances changes, :class:`ChannelHolder` builds a new channel and
swaps it in; the old one is closed once its in-flight calls finish (bounded by
a grace period). New calls always take the current channel.

Example::

    holder = ChannelHolder("greeter")
    await holder.update(["127.0.0.1:5001", "127.0.0.1:5002"])
    holder.live.target      # "ipv4:127.0.0.1:5001,127.0.0.1:5002"
    await holder.close()
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
from collections.abc import Iterable, Sequence
from typing import Any

import grpc

from services.runtime.client._retry import MethodSpec

__all__ = [
    "ChannelHolder",
    "LiveChannel",
    "build_target",
    "resolve_addresses",
    "service_config",
    "split_address",
]

log = logging.getLogger("services.runtime.client")

_RESOLVE_TIMEOUT_S = 2.0


def split_address(address: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` → ``(host, port)``; ValueError when malformed.

    Example: ``split_address("[::1]:80") == ("::1", 80)``.
    """
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"invalid address {address!r}: expected host:port")
    if host.startswith("["):
        host = host[1:].removesuffix("]")
    return host, int(port_text)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


_NAME_OVERRIDE = "grpc.ssl_target_name_override"


def build_target(addresses: Sequence[tuple[str, int]]) -> str:
    """A gRPC target naming every (IP literal, port) pair, for the round_robin policy.

    IPv4-only lists use the ``ipv4:`` scheme; any IPv6 address makes it an
    ``ipv6:`` list with the IPv4 ones written as v4-mapped addresses.

    Example: ``build_target([("127.0.0.1", 1), ("::1", 2)])`` is
    ``"ipv6:[::ffff:127.0.0.1]:1,[::1]:2"``.
    """
    ips = [(ipaddress.ip_address(host), port) for host, port in addresses]
    if all(ip.version == 4 for ip, _ in ips):
        return "ipv4:" + ",".join(f"{ip}:{port}" for ip, port in ips)
    return "ipv6:" + ",".join(f"[{_as_v6(ip)}]:{port}" for ip, port in ips)


def _as_v6(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return f"::ffff:{ip}" if ip.version == 4 else str(ip)


async def resolve_addresses(addresses: Iterable[str]) -> list[tuple[str, int]]:
    """Turn ``host:port`` strings into (IP literal, port) pairs, resolving host names.

    A host name contributes every address it resolves to (so ``localhost``
    works whether the server listens on 127.0.0.1 or ::1); a malformed address
    or one that does not resolve is left out with a warning.
    """
    result: list[tuple[str, int]] = []
    for address in addresses:
        try:
            host, port = split_address(address)
        except ValueError as err:
            log.warning("skipping %s", err)
            continue
        hosts = [host] if _ip(host) is not None else await _lookup(host, port)
        result.extend((h, port) for h in hosts if (h, port) not in result)
    return result


async def _lookup(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(_RESOLVE_TIMEOUT_S):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError) as err:
        log.warning("cannot resolve %s: %s", host, err)
        return []
    return list(dict.fromkeys(str(info[4][0]).partition("%")[0] for info in infos))


def service_config(lb_policy: str, health_check: bool) -> str:
    """The default service config: the balancing policy and, optionally, health checking.

    No ``retryPolicy``: retries are the client's (tenacity), never gRPC's too.

    Example: ``json.loads(service_config("round_robin", False))["loadBalancingConfig"]``
    is ``[{"round_robin": {}}]``.
    """
    config: dict[str, Any] = {"loadBalancingConfig": [{lb_policy: {}}]}
    if health_check:
        config["healthCheckConfig"] = {"serviceName": ""}
    return json.dumps(config)


class LiveChannel:
    """One open channel over one address list, with its multicallables made once.

    Example: ``await live.unary(spec)(request, timeout=1.0)``.
    """

    __slots__ = ("_streams", "_unaries", "addresses", "channel", "target")

    def __init__(self, channel: grpc.aio.Channel, target: str, addresses: tuple[str, ...]) -> None:
        self.channel = channel
        self.target = target
        self.addresses = addresses
        self._unaries: dict[str, grpc.aio.UnaryUnaryMultiCallable[Any, Any]] = {}
        self._streams: dict[str, grpc.aio.UnaryStreamMultiCallable[Any, Any]] = {}

    def unary(self, spec: MethodSpec[Any, Any]) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        """The unary multicallable of ``spec`` on this channel (made on first use)."""
        callable_ = self._unaries.get(spec.path)
        if callable_ is None:
            callable_ = self.channel.unary_unary(
                spec.path,
                request_serializer=spec.request_type.SerializeToString,
                response_deserializer=spec.response_type.FromString,
            )
            self._unaries[spec.path] = callable_
        return callable_

    def unary_stream(
        self, spec: MethodSpec[Any, Any]
    ) -> grpc.aio.UnaryStreamMultiCallable[Any, Any]:
        """The server-streaming multicallable of ``spec`` on this channel."""
        callable_ = self._streams.get(spec.path)
        if callable_ is None:
            callable_ = self.channel.unary_stream(
                spec.path,
                request_serializer=spec.request_type.SerializeToString,
                response_deserializer=spec.response_type.FromString,
            )
            self._streams[spec.path] = callable_
        return callable_


class ChannelHolder:
    """The current channel of one service; swapped when its address list changes.

    ``lb_policy`` is ``round_robin`` for services and ``pick_first`` for the
    registry (its addresses are tried in turn); ``health_check`` makes the
    policy skip instances that report NOT_SERVING. ``live`` is None while no
    address is known.
    """

    def __init__(
        self,
        name: str,
        *,
        lb_policy: str = "round_robin",
        health_check: bool = True,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        close_grace_s: float = 5.0,
    ) -> None:
        self.name = name
        self.live: LiveChannel | None = None
        self._options = (*options, ("grpc.service_config", service_config(lb_policy, health_check)))
        self._credentials = credentials
        self._grace = close_grace_s
        self._retiring: dict[asyncio.Task[None], grpc.aio.Channel] = {}
        self._lock = asyncio.Lock()

    @property
    def addresses(self) -> tuple[str, ...]:
        """The addresses the current channel dials (empty when there is none)."""
        return self.live.addresses if self.live is not None else ()

    async def update(self, addresses: Iterable[str]) -> bool:
        """Point new calls at ``addresses``; True when the channel was rebuilt.

        An unchanged set keeps the channel (and its connections). An empty set
        keeps the old channel too: stale instances beat none, and round_robin
        skips the dead ones.
        """
        wanted = tuple(sorted(set(addresses)))
        async with self._lock:
            if not wanted or (self.live is not None and wanted == self.live.addresses):
                return False
            resolved = await resolve_addresses(wanted)
            if not resolved:
                return False
            target = build_target(resolved)
            self._swap(LiveChannel(self._open(target), target, wanted))
            return True

    def _open(self, target: str) -> grpc.aio.Channel:
        if self._credentials is None:
            return grpc.aio.insecure_channel(target, options=self._options)
        return grpc.aio.secure_channel(target, self._credentials, options=self._tls_options(target))

    def _tls_options(self, target: str) -> tuple[tuple[str, Any], ...]:
        """TLS to several instances checks every certificate against the service's name.

        A one-address target's authority is that address, which its certificate
        names. A list's default authority is the whole list, which no certificate
        names, so unless a server name was configured the check uses the
        service's name (``user``): every instance's certificate must carry it as
        a DNS name, as ``switchboard tls cert --name user`` makes them.
        """
        overridden = any(key == _NAME_OVERRIDE for key, _ in self._options)
        if overridden or "," not in target:
            return self._options
        return (*self._options, (_NAME_OVERRIDE, self.name))

    def _swap(self, live: LiveChannel) -> None:
        old, self.live = self.live, live
        log.info("%s: channel now over %s", self.name, ", ".join(live.addresses))
        if old is not None:
            task = asyncio.create_task(old.channel.close(self._grace))
            self._retiring[task] = old.channel
            task.add_done_callback(self._retiring.pop)

    async def close(self) -> None:
        """Close the current channel and any still draining, cancelling their calls."""
        live, self.live = self.live, None
        retiring = list(self._retiring.items())
        for task, _ in retiring:
            task.cancel()
        for _, channel in retiring:
            await channel.close()
        if live is not None:
            await live.channel.close()
