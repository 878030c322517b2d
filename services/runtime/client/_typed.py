"""The base of every typed client, and the registry's read client.

A typed client wraps one :class:`Connection` and builds each request from
keyword arguments; every call still goes through the one generic path,
:meth:`Connection.call` / :meth:`Connection.stream`, so deadlines, retries,
request ids and error mapping behave the same everywhere. A service ships its
own typed client in its package (``services/greeter/client.py``); this module
names none of them.

Example::

    class GreeterClient(TypedClient):
        SERVICE = "greeter"

    greeter = await GreeterClient.connect(client)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeVar

from google.protobuf import field_mask_pb2

from services.runtime.client._retry import MethodSpec
from switchboard.registry.v1 import registry_service_pb2

if TYPE_CHECKING:
    from services.runtime.client._client import Client, Connection

__all__ = ["RegistryClient", "TypedClient", "update_mask"]

_R = registry_service_pb2
_REGISTRY = "/switchboard.registry.v1.RegistryService/"

C = TypeVar("C", bound="TypedClient")

RESOLVE: MethodSpec[_R.ResolveRequest, _R.ResolveResponse] = MethodSpec.of(_REGISTRY + "Resolve")
LIST_SERVICES: MethodSpec[_R.ListServicesRequest, _R.ListServicesResponse] = MethodSpec.of(
    _REGISTRY + "ListServices"
)
WATCH: MethodSpec[_R.WatchRequest, _R.WatchResponse] = MethodSpec.of(_REGISTRY + "Watch")


def update_mask(**fields: Any) -> tuple[field_mask_pb2.FieldMask, dict[str, Any]]:
    """The update mask naming the fields that are not None, and those fields.

    Example: ``update_mask(email=None, display_name="Ada")`` -> (paths ["display_name"], {...}).
    """
    given = {name: value for name, value in fields.items() if value is not None}
    return field_mask_pb2.FieldMask(paths=sorted(given)), given


class TypedClient:
    """A typed client over one :class:`Connection`; ``SERVICE`` is its registry name."""

    SERVICE = ""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @classmethod
    async def connect(cls: type[C], client: Client) -> C:
        """Connect ``client`` to this client's service: ``await GreeterClient.connect(c)``."""
        return cls(await client.connect(cls.SERVICE))


class RegistryClient:
    """Read calls to the registry: resolve a service, list services, watch one.

    Example::

        registry = RegistryClient(await client.registry())
        for summary in (await registry.list_services()).services: ...
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def resolve(self, service: str, *, timeout_s: float | None = None) -> _R.ResolveResponse:
        """Live instances of ``service`` (``.instances``) and the revision (``.revision``)."""
        request = _R.ResolveRequest(service=service)
        return await self.conn.call(RESOLVE, request, timeout_s=timeout_s)

    async def list_services(self, *, timeout_s: float | None = None) -> _R.ListServicesResponse:
        """Services with live instances and their counts, by name."""
        return await self.conn.call(LIST_SERVICES, _R.ListServicesRequest(), timeout_s=timeout_s)

    async def watch(
        self, service: str, start_revision: int = 0, *, timeout_s: float | None = None
    ) -> AsyncIterator[_R.WatchResponse]:
        """A snapshot (or the events after ``start_revision``), then every change."""
        request = _R.WatchRequest(service=service, start_revision=start_revision)
        async for message in self.conn.stream(WATCH, request, timeout_s=timeout_s):
            yield message
