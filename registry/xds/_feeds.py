"""Endpoint feeds: one registry watch per service that some xDS client follows.

Every ADS stream subscribed to ``ClusterLoadAssignment user`` shares one feed:
the feed follows the store's Watch for ``user`` (snapshot, then every change),
keeps the live instances, builds the packed ClusterLoadAssignment once per
change, and calls each subscriber's callback with the service name. With 1,000
subscribers a change costs one watch event and one message build, not 1,000.

The feed resumes a broken watch from its last revision (the store replays the
missed events or sends a RESYNC snapshot) after a jittered, capped backoff, and
its watch ends when the last subscriber leaves.

Example::

    feeds = EndpointFeeds(store)
    feeds.subscribe("user", on_change)      # on_change("user") after each change
    packed = feeds.assignment("user")       # None until the first snapshot arrived
    await feeds.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from google.protobuf import any_pb2

from registry.xds._resources import Endpoint, load_assignment, pack, parse_address
from switchboard.registry.v1 import instance_pb2

__all__ = ["EndpointFeeds", "Subscriber", "WatchableStore"]

_log = logging.getLogger("registry.xds")

Subscriber = Callable[[str], None]
"""Called (on the event loop, must not block) with the service name after each change."""

_Item = instance_pb2.Snapshot | instance_pb2.InstanceEvent
_GONE = (instance_pb2.INSTANCE_EVENT_TYPE_REMOVED, instance_pb2.INSTANCE_EVENT_TYPE_EXPIRED)
_BACKOFF = (0.1, 5.0)  # seconds: first and largest wait before re-opening a broken watch


class _Stream(AbstractAsyncContextManager["_Stream"], Protocol):
    def __aiter__(self) -> AsyncIterator[_Item]: ...


class WatchableStore(Protocol):
    """The one store method the control plane uses (any ``RegistryStore`` has it)."""

    async def watch(self, service: str, start_revision: int) -> _Stream: ...


class EndpointFeeds:
    """The shared feeds, by service name; see the module docstring."""

    def __init__(self, store: WatchableStore) -> None:
        self._store = store
        self._feeds: dict[str, _Feed] = {}
        self._ips = _HostCache()

    def subscribe(self, service: str, subscriber: Subscriber) -> None:
        """Call ``subscriber(service)`` after every change of ``service`` from now on."""
        feed = self._feeds.get(service)
        if feed is None:
            feed = self._feeds[service] = _Feed(service, self._store, self._ips)
        feed.subscribers.add(subscriber)

    def unsubscribe(self, service: str, subscriber: Subscriber) -> None:
        """Stop calling ``subscriber``; the last one out ends the feed's watch."""
        feed = self._feeds.get(service)
        if feed is None:
            return
        feed.subscribers.discard(subscriber)
        if not feed.subscribers:
            del self._feeds[service]
            feed.stop()

    def assignment(self, service: str) -> tuple[int, any_pb2.Any] | None:
        """(revision, packed ClusterLoadAssignment) of a subscribed service, once known."""
        feed = self._feeds.get(service)
        return None if feed is None else feed.current

    def __len__(self) -> int:
        return len(self._feeds)

    async def close(self) -> None:
        """End every feed's watch."""
        feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            feed.stop()
        for feed in feeds:
            with contextlib.suppress(asyncio.CancelledError):
                await feed.task


class _Feed:
    """One service's instances, followed from the store, and who wants to hear of them."""

    def __init__(self, service: str, store: WatchableStore, ips: _HostCache) -> None:
        self.service = service
        self.subscribers: set[Subscriber] = set()
        self.current: tuple[int, any_pb2.Any] | None = None
        self._store = store
        self._ips = ips
        self._instances: dict[str, instance_pb2.Instance] = {}
        self._revision = 0
        self.task = asyncio.get_running_loop().create_task(self._follow())

    def stop(self) -> None:
        self.task.cancel()

    async def _follow(self) -> None:
        """Watch forever; after an error wait (full jitter, capped) and resume."""
        delay = _BACKOFF[0]
        while True:
            try:
                async with await self._store.watch(self.service, self._revision) as stream:
                    async for item in stream:
                        self._apply(item)
                        await self._publish()
                        delay = _BACKOFF[0]
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the store is closing or briefly unreachable
                _log.debug("xds feed %s: watch ended (%s); resuming", self.service, err)
            await asyncio.sleep(random.uniform(0, delay))
            delay = min(delay * 2, _BACKOFF[1])

    def _apply(self, item: _Item) -> None:
        if isinstance(item, instance_pb2.Snapshot):
            self._instances = {i.instance_id: i for i in item.instances}
        elif item.type in _GONE:
            self._instances.pop(item.instance.instance_id, None)
        else:
            self._instances[item.instance.instance_id] = item.instance
        self._revision = item.revision

    async def _publish(self) -> None:
        endpoints = [await self._ips.endpoint(i.address) for i in self._instances.values()]
        usable = sorted({e for e in endpoints if e is not None}, key=lambda e: (e.ip, e.port))
        self.current = (self._revision, pack(load_assignment(self.service, usable)))
        for subscriber in list(self.subscribers):
            subscriber(self.service)


class _HostCache:
    """Instance address -> Endpoint. gRPC clients take IP literals only, so a host name
    (an instance listening on a wildcard advertises its host name) is looked up once."""

    _MAX = 4_096

    def __init__(self) -> None:
        self._ips: dict[str, str | None] = {}

    async def endpoint(self, address: str) -> Endpoint | None:
        try:
            host, port, literal = parse_address(address)
        except ValueError:
            return None
        ip = host if literal else await self._lookup(host)
        return None if ip is None else Endpoint(ip, port)

    async def _lookup(self, host: str) -> str | None:
        if host not in self._ips:
            if len(self._ips) >= self._MAX:
                self._ips.clear()
            self._ips[host] = await _first_ip(host)
        return self._ips[host]


async def _first_ip(host: str) -> str | None:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as err:
        _log.warning("xds: instance host %r does not resolve (%s); left out", host, err)
        return None
    return str(infos[0][4][0]) if infos else None
