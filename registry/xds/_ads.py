"""The Aggregated Discovery Service, state of the world, for proxyless gRPC clients.

One :class:`_Session` per ADS stream keeps, per resource type, the names the
client subscribed to and the nonce of the last response. The protocol, as the
session applies it:

* a request whose ``response_nonce`` is not the type's latest nonce is stale and
  ignored (the client's next ACK repeats its full subscription anyway);
* a request with ``error_detail`` is a NACK: logged with the client's message,
  nothing resent until something changes; other streams never notice;
* a request whose names differ from the subscription (or the first one for a
  type) gets a response with every subscribed resource of that type;
* a change of a subscribed service's instances sends a new ClusterLoadAssignment
  version at once (the feed calls back, the stream's writer wakes).

``version_info`` of an endpoints response is the registry revision of its newest
assignment; other types are static per name and use version ``1``. Nonces count
up per stream. A malformed request ends that stream alone with INVALID_ARGUMENT.

Example::

    plane = ControlPlane(store)
    await serve([registry_service(servicer), plane.service()], config, hooks=[plane])
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import grpc.aio
from google.protobuf import any_pb2

from envoy.service.discovery.v3 import ads_pb2, discovery_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc as ads_grpc
from registry import _validate as v
from registry.xds import _resources as r
from registry.xds._feeds import EndpointFeeds, WatchableStore
from services.runtime import InvalidArgument, Service, Unavailable

__all__ = ["ADS_SERVICE_NAME", "AdsServicer", "ControlPlane"]

ADS_SERVICE_NAME: str = ads_pb2.DESCRIPTOR.services_by_name["AggregatedDiscoveryService"].full_name

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

_log = logging.getLogger("registry.xds")

MAX_NAMES = 1_000  # resource names one request may subscribe to, per type
_STATIC: dict[str, Callable[[str], Any]] = {
    r.LISTENER: r.listener,
    r.ROUTE: r.route_configuration,
    r.CLUSTER: r.cluster,
}


@dataclass
class _Subscription:
    """One resource type on one stream."""

    names: frozenset[str] = frozenset()
    valid: tuple[str, ...] = ()  # the names that are service names, sorted
    nonce: str = ""
    requested: bool = False


@dataclass(eq=False)  # identity: sessions and their callbacks live in sets
class _Session:
    """One ADS stream: subscriptions, what needs sending, and the wake-up for the writer."""

    feeds: EndpointFeeds
    peer: str
    node: str = "-"
    subs: dict[str, _Subscription] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0
    nacks: int = 0

    def endpoints_changed(self, service: str) -> None:
        """Feed callback: a subscribed service's instances changed."""
        self.dirty.add(r.ENDPOINTS)
        self.wake.set()

    def handle(self, request: discovery_pb2.DiscoveryRequest) -> None:
        """Apply one request: subscribe, ACK, NACK, or ignore a stale one."""
        _check(request)
        if request.HasField("node") and request.node.id:
            self.node = request.node.id
        if request.type_url not in r.TYPE_URLS:
            _log.debug("xds: %s asked for unsupported type %s", self.peer, request.type_url)
            return
        sub = self.subs.setdefault(request.type_url, _Subscription())
        if sub.requested and request.response_nonce != sub.nonce:
            return  # stale: an answer to an older response
        if request.HasField("error_detail"):
            self._nacked(request)
        names = frozenset(request.resource_names)
        if names != sub.names or not sub.requested:
            sub.requested = True
            self._resubscribe(request.type_url, sub.names, names)
            sub.names, sub.valid = names, tuple(sorted(n for n in names if _valid(n)))
            self.dirty.add(request.type_url)
            self.wake.set()

    def _nacked(self, request: discovery_pb2.DiscoveryRequest) -> None:
        self.nacks += 1
        _log.warning(
            "xds NACK from %s (node %s) for %s nonce %s: %s",
            self.peer,
            self.node,
            request.type_url,
            request.response_nonce,
            request.error_detail.message,
        )

    def _resubscribe(self, type_url: str, old: frozenset[str], new: frozenset[str]) -> None:
        if type_url != r.ENDPOINTS:
            return
        for name in old - new:
            self.feeds.unsubscribe(name, self.endpoints_changed)
        for name in new - old:
            if _valid(name):
                self.feeds.subscribe(name, self.endpoints_changed)

    def close(self) -> None:
        """Leave every feed."""
        for name in self.subs.get(r.ENDPOINTS, _Subscription()).names:
            self.feeds.unsubscribe(name, self.endpoints_changed)

    def pending(self) -> Iterator[discovery_pb2.DiscoveryResponse]:
        """A response for each type that needs one, in LDS, RDS, CDS, EDS order."""
        for type_url in r.TYPE_URLS:
            if type_url in self.dirty:
                self.dirty.discard(type_url)
                response = self._response(type_url)
                if response is not None:
                    yield response

    def _response(self, type_url: str) -> discovery_pb2.DiscoveryResponse | None:
        sub = self.subs[type_url]
        names = sub.valid
        if type_url == r.ENDPOINTS:
            version, resources = self._assignments(names)
            if not resources:
                return None  # nothing known yet: the feed calls back when it is
        else:
            version, resources = 1, [r.pack(_STATIC[type_url](n)) for n in names]
        self.sent += 1
        sub.nonce = str(self.sent)
        return discovery_pb2.DiscoveryResponse(
            version_info=str(version), resources=resources, type_url=type_url, nonce=sub.nonce
        )

    def _assignments(self, names: tuple[str, ...]) -> tuple[int, list[any_pb2.Any]]:
        known = [a for a in map(self.feeds.assignment, names) if a is not None]
        return max((rev for rev, _ in known), default=0), [packed for _, packed in known]


def _valid(name: str) -> bool:
    """A resource name is a service name (``xds:///user`` asks for ``user``)."""
    return not v.service_violations(name)


def _check(request: discovery_pb2.DiscoveryRequest) -> None:
    """INVALID_ARGUMENT for a request no xDS client sends."""
    if not request.type_url:
        raise InvalidArgument("type_url is required on an ADS stream", reason="XDS_NO_TYPE_URL")
    if len(request.resource_names) > MAX_NAMES:
        raise InvalidArgument(
            f"at most {MAX_NAMES} resource names per request", reason="XDS_TOO_MANY_NAMES"
        )


class AdsServicer(ads_grpc.AggregatedDiscoveryServiceServicer):
    """StreamAggregatedResources over the shared endpoint feeds. Reads: no token needed."""

    def __init__(self, feeds: EndpointFeeds) -> None:
        self.feeds = feeds
        self.sessions: set[_Session] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    async def StreamAggregatedResources(
        self,
        request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest],
        context: Context,
    ) -> AsyncIterator[discovery_pb2.DiscoveryResponse]:
        """Read requests in a task; write whatever they, or the feeds, make pending."""
        session = _Session(self.feeds, context.peer())
        reader = asyncio.create_task(_read(session, request_iterator))
        self.sessions.add(session)
        try:
            with self._stoppable():
                while True:
                    await session.wake.wait()
                    session.wake.clear()
                    if reader.done():
                        reader.result()  # re-raises a malformed request's error
                        return  # the client closed its side
                    for response in session.pending():
                        yield response
        finally:
            if reader.done() and not reader.cancelled():
                reader.exception()  # retrieved: raised above, or the stream was cancelled
            reader.cancel()
            self.sessions.discard(session)
            session.close()

    async def stop(self) -> None:
        """End every open stream with UNAVAILABLE (the registry is stopping)."""
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()

    @contextmanager
    def _stoppable(self) -> Iterator[None]:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            yield
        except asyncio.CancelledError:
            if not self._stopping:
                raise  # the client went away
            task.uncancel()
            raise Unavailable("registry is shutting down", retry_delay=1.0) from None
        finally:
            self._tasks.discard(task)


async def _read(session: _Session, requests: AsyncIterator[discovery_pb2.DiscoveryRequest]) -> None:
    """Apply every request; always wake the writer at the end (close or error)."""
    try:
        async for request in requests:
            session.handle(request)
    finally:
        session.wake.set()


class ControlPlane:
    """The xDS control plane of one registry process: servicer, feeds, lifecycle hook.

    Pass it to ``serve`` as a hook too: on stop it ends open ADS streams (they would
    hold up the drain) and the feeds' watches.
    """

    def __init__(self, store: WatchableStore) -> None:
        self.feeds = EndpointFeeds(store)
        self.servicer = AdsServicer(self.feeds)

    def service(self) -> Service:
        """The runtime ``Service`` binding for ``create_server`` / ``serve``."""
        return Service(
            self.servicer,
            ads_grpc.add_AggregatedDiscoveryServiceServicer_to_server,
            ADS_SERVICE_NAME,
        )

    async def started(self, port: int) -> None:
        """Nothing to do on start."""

    async def stopping(self) -> None:
        """End the streams, then the feeds."""
        await self.servicer.stop()
        await self.feeds.close()
