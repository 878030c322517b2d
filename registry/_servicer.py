"""The RegistryService servicer: the seven RPCs over a ``RegistryStore``.

Each handler checks authorization first (writes only), then validates the
whole request (every bad field named, nothing changed), then makes one store
call. Errors are ``services.runtime.errors`` types; the runtime's error
interceptor turns them into statuses with google.rpc details.

Heartbeat, KeepAlive, Resolve and Watch answer with serialized bytes, built
once and reused while they stay true (see :mod:`registry._wire`): a Resolve
answer per service until its store state changes, a Watch event once for all
its watchers, a renewal's answer per TTL. ``registry_service`` registers them
with a serializer that sends those bytes as they are.

Example::

    servicer = RegistryServicer(MemoryStore(), RegistrySettings(token="s3cret"))
    service = registry_service(servicer)       # a runtime Service for create_server / serve
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias

import grpc.aio
from google.protobuf import duration_pb2

from registry import _validate as v
from registry._auth import WriteGuard
from registry._settings import RegistrySettings
from registry._wire import AnswerCache, add_to_server
from registry.store import RegistryStore, Resolution, WatchItem
from services.runtime import Service, errors
from switchboard.registry.v1 import instance_pb2
from switchboard.registry.v1 import registry_service_pb2 as rs
from switchboard.registry.v1 import registry_service_pb2_grpc as rs_grpc

__all__ = ["SERVICE_NAME", "RegistryServicer", "registry_service"]

SERVICE_NAME: str = rs.DESCRIPTOR.services_by_name["RegistryService"].full_name

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

_WATCH_EVENTS_KEPT = 64  # serialized events kept for watchers still draining older ones


class RegistryServicer:
    """RegistryService on grpc.aio: Register, Heartbeat, KeepAlive, Deregister (writes),
    Resolve, Watch, ListServices (open reads).

    Register it with :func:`registry_service`: Heartbeat, KeepAlive, Resolve and
    Watch answer with serialized bytes (the generated registration would try to
    serialize them again). ``bind_certificates`` turns on the mTLS rule: a client
    may register only under a service its certificate's CN or SAN names.
    """

    def __init__(
        self,
        store: RegistryStore,
        settings: RegistrySettings | None = None,
        *,
        bind_certificates: bool = False,
    ) -> None:
        self.store = store
        self.settings = settings or RegistrySettings()
        self._guard = WriteGuard(self.settings.token, bind_certificates=bind_certificates)
        self._streams: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._resolve_answers: dict[str, tuple[Resolution, bytes]] = {}
        self._renewal_answers: dict[float, bytes] = {}  # HeartbeatResponse bytes by TTL
        self._watch_answers = AnswerCache(_WATCH_EVENTS_KEPT)

    async def stop(self) -> None:
        """End every open KeepAlive stream with UNAVAILABLE (the process is stopping).

        A KeepAlive stream mostly waits for its client's next request, so it
        would otherwise hold the server's drain for the whole grace period.
        Watch streams end when the store closes.
        """
        self._stopping = True
        for task in list(self._streams):
            task.cancel()

    @contextmanager
    def _stoppable(self) -> Iterator[None]:
        """Make the current stream's task one that ``stop`` ends with UNAVAILABLE."""
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        try:
            yield
        except asyncio.CancelledError:
            if not self._stopping:
                raise  # the caller went away
            task.uncancel()
            raise errors.Unavailable("registry is shutting down", retry_delay=1.0) from None
        finally:
            self._streams.discard(task)

    async def Register(self, request: rs.RegisterRequest, context: Context) -> rs.RegisterResponse:
        """Validate the instance and TTL, then store it under a new lease."""
        self._guard.check_token(context)
        settings = self.settings
        instance = request.instance if request.HasField("instance") else None
        found = v.instance_violations(instance)
        found += v.ttl_violations(request.ttl, minimum=settings.ttl_min, maximum=settings.ttl_max)
        v.require(found, "invalid registration")
        self._guard.check_service(context, request.instance.service)
        ttl = v.ttl_seconds(request.ttl, settings.ttl_default)
        owner = self._guard.owner(context)
        registration = await self.store.register(request.instance, ttl, owner=owner)
        return rs.RegisterResponse(
            lease_id=registration.lease_id,
            ttl=_duration(registration.ttl),
            revision=registration.revision,
        )

    async def Heartbeat(self, request: rs.HeartbeatRequest, context: Context) -> bytes:
        """Renew one lease; the answer (HeartbeatResponse bytes) is the same for every TTL."""
        self._guard.check_token(context)
        v.require(v.lease_id_violations(request.lease_id), "invalid lease id")
        ttl = await self.store.renew(request.lease_id, owner=self._guard.owner(context))
        answer = self._renewal_answers.get(ttl)
        if answer is None:
            answer = rs.HeartbeatResponse(ttl=_duration(ttl)).SerializeToString()
            if len(self._renewal_answers) < _WATCH_EVENTS_KEPT:  # TTLs are few; bound anyway
                self._renewal_answers[ttl] = answer
        return answer

    async def KeepAlive(
        self, request_iterator: AsyncIterator[rs.KeepAliveRequest], context: Context
    ) -> AsyncIterator[bytes]:
        """Renew one lease per request; the first unknown or malformed lease ends the stream.

        A stream mostly renews one lease with one TTL: its last answer's bytes are reused.
        """
        self._guard.check_token(context)
        owner = self._guard.owner(context)
        last: tuple[str, float, bytes] = ("", 0.0, b"")
        with self._stoppable():
            async for request in request_iterator:
                lease_id = request.lease_id
                v.require(v.lease_id_violations(lease_id), "invalid lease id")
                ttl = await self.store.renew(lease_id, owner=owner)
                if lease_id != last[0] or ttl != last[1]:
                    answer = rs.KeepAliveResponse(lease_id=lease_id, ttl=_duration(ttl))
                    last = (lease_id, ttl, answer.SerializeToString())
                yield last[2]

    async def Deregister(
        self, request: rs.DeregisterRequest, context: Context
    ) -> rs.DeregisterResponse:
        """Remove the lease's instance and revoke the lease."""
        self._guard.check_token(context)
        v.require(v.lease_id_violations(request.lease_id), "invalid lease id")
        owner = self._guard.owner(context)
        revision = await self.store.deregister(request.lease_id, owner=owner)
        return rs.DeregisterResponse(revision=revision)

    async def Resolve(self, request: rs.ResolveRequest, context: Context) -> bytes:
        """The live instances of a service, ordered by instance id (ResolveResponse bytes).

        The store hands back the same Resolution while the service is unchanged
        (renewals included: the answer carries renew times), so its serialized
        answer is kept with it: building and serializing 100 instances costs far
        more than the call itself.
        """
        v.require(v.service_violations(request.service), "invalid service name")
        resolution = await self.store.resolve(request.service)
        cached = self._resolve_answers.get(request.service)
        if cached is not None and cached[0] is resolution:
            return cached[1]
        answer = rs.ResolveResponse(
            instances=resolution.instances, revision=resolution.revision
        ).SerializeToString()
        if resolution.instances:
            self._resolve_answers[request.service] = (resolution, answer)
        else:
            self._resolve_answers.pop(request.service, None)
        return answer

    async def Watch(self, request: rs.WatchRequest, context: Context) -> AsyncIterator[bytes]:
        """A snapshot or replayed events, then every change, until the caller leaves
        (WatchResponse bytes; an event pushed to many watchers is serialized once)."""
        found = v.service_violations(request.service)
        found += v.revision_violations(request.start_revision)
        v.require(found, "invalid watch")
        async with await self.store.watch(request.service, request.start_revision) as stream:
            async for item in stream:
                yield self._watch_answer(item)

    def _watch_answer(self, item: WatchItem) -> bytes:
        """The WatchResponse bytes for ``item``; an event's are shared by its watchers."""
        if isinstance(item, instance_pb2.Snapshot):
            return rs.WatchResponse(snapshot=item).SerializeToString()  # one watcher's own
        return self._watch_answers.get(
            item, lambda: rs.WatchResponse(event=item).SerializeToString()
        )

    async def ListServices(
        self, request: rs.ListServicesRequest, context: Context
    ) -> rs.ListServicesResponse:
        """Every service with a live instance and its instance count, by name."""
        counts, revision = await self.store.list_services()
        summaries = [
            rs.ServiceSummary(name=c.name, instance_count=c.instance_count) for c in counts
        ]
        return rs.ListServicesResponse(services=summaries, revision=revision)


def registry_service(servicer: RegistryServicer) -> Service:
    """The runtime ``Service`` binding for ``create_server`` / ``serve``.

    Example: ``create_server([registry_service(servicer)], config)``.
    """
    return Service(servicer, _add_to_server, SERVICE_NAME)


def _add_to_server(servicer: RegistryServicer, server: grpc.aio.Server) -> None:
    """The generated registration, with the byte-answering methods sent as they are."""
    byte_methods: dict[str, Callable[..., Any]] = {
        "Heartbeat": servicer.Heartbeat,
        "KeepAlive": servicer.KeepAlive,
        "Resolve": servicer.Resolve,
        "Watch": servicer.Watch,
    }
    add_to_server(rs_grpc.add_RegistryServiceServicer_to_server, servicer, server, byte_methods)


def _duration(seconds: float) -> duration_pb2.Duration:
    """A Duration message for a number of seconds."""
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration
