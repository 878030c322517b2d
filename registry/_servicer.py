"""The RegistryService servicer: the seven RPCs over a ``RegistryStore``.

Each handler checks authorization first (writes only), then validates the
whole request (every bad field named, nothing changed), then makes one store
call. Errors are ``services.runtime.errors`` types; the runtime's error
interceptor turns them into statuses with google.rpc details.

Example::

    servicer = RegistryServicer(MemoryStore(), RegistrySettings(token="s3cret"))
    service = registry_service(servicer)       # a runtime Service for create_server / serve
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias

import grpc.aio
from google.protobuf import duration_pb2

from registry import _validate as v
from registry._auth import WriteGuard
from registry._settings import RegistrySettings
from registry.store import RegistryStore, Resolution, WatchItem
from services.runtime import Service, errors
from switchboard.registry.v1 import instance_pb2
from switchboard.registry.v1 import registry_service_pb2 as rs
from switchboard.registry.v1 import registry_service_pb2_grpc as rs_grpc

__all__ = ["SERVICE_NAME", "RegistryServicer", "registry_service"]

SERVICE_NAME: str = rs.DESCRIPTOR.services_by_name["RegistryService"].full_name

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class RegistryServicer(rs_grpc.RegistryServiceServicer):
    """RegistryService on grpc.aio: Register, Heartbeat, KeepAlive, Deregister (writes),
    Resolve, Watch, ListServices (open reads).

    ``bind_certificates`` turns on the mTLS rule: a client may register only
    under a service its certificate's CN or SAN names.
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
        self._resolve_answers: dict[str, tuple[Resolution, rs.ResolveResponse]] = {}

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

    async def Heartbeat(
        self, request: rs.HeartbeatRequest, context: Context
    ) -> rs.HeartbeatResponse:
        """Renew one lease."""
        self._guard.check_token(context)
        v.require(v.lease_id_violations(request.lease_id), "invalid lease id")
        ttl = await self.store.renew(request.lease_id, owner=self._guard.owner(context))
        return rs.HeartbeatResponse(ttl=_duration(ttl))

    async def KeepAlive(
        self, request_iterator: AsyncIterator[rs.KeepAliveRequest], context: Context
    ) -> AsyncIterator[rs.KeepAliveResponse]:
        """Renew one lease per request; the first unknown or malformed lease ends the stream."""
        self._guard.check_token(context)
        owner = self._guard.owner(context)
        with self._stoppable():
            async for request in request_iterator:
                v.require(v.lease_id_violations(request.lease_id), "invalid lease id")
                ttl = await self.store.renew(request.lease_id, owner=owner)
                yield rs.KeepAliveResponse(lease_id=request.lease_id, ttl=_duration(ttl))

    async def Deregister(
        self, request: rs.DeregisterRequest, context: Context
    ) -> rs.DeregisterResponse:
        """Remove the lease's instance and revoke the lease."""
        self._guard.check_token(context)
        v.require(v.lease_id_violations(request.lease_id), "invalid lease id")
        owner = self._guard.owner(context)
        revision = await self.store.deregister(request.lease_id, owner=owner)
        return rs.DeregisterResponse(revision=revision)

    async def Resolve(self, request: rs.ResolveRequest, context: Context) -> rs.ResolveResponse:
        """The live instances of a service, ordered by instance id."""
        v.require(v.service_violations(request.service), "invalid service name")
        resolution = await self.store.resolve(request.service)
        cached = self._resolve_answers.get(request.service)
        if cached is not None and cached[0] is resolution:
            return cached[1]  # copying 100 instances into a response costs ~70 µs a call
        answer = rs.ResolveResponse(instances=resolution.instances, revision=resolution.revision)
        if resolution.instances:
            self._resolve_answers[request.service] = (resolution, answer)
        else:
            self._resolve_answers.pop(request.service, None)
        return answer

    async def Watch(
        self, request: rs.WatchRequest, context: Context
    ) -> AsyncIterator[rs.WatchResponse]:
        """A snapshot or replayed events, then every change, until the caller leaves."""
        found = v.service_violations(request.service)
        found += v.revision_violations(request.start_revision)
        v.require(found, "invalid watch")
        async with await self.store.watch(request.service, request.start_revision) as stream:
            async for item in stream:
                yield _watch_response(item)

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
    return Service(servicer, rs_grpc.add_RegistryServiceServicer_to_server, SERVICE_NAME)


def _duration(seconds: float) -> duration_pb2.Duration:
    """A Duration message for a number of seconds."""
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


def _watch_response(item: WatchItem) -> rs.WatchResponse:
    """Wrap a store item in the stream's oneof."""
    if isinstance(item, instance_pb2.Snapshot):
        return rs.WatchResponse(snapshot=item)
    return rs.WatchResponse(event=item)
