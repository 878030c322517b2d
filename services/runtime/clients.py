"""Typed clients for the user, product and registry services.

Each method builds its request from keyword arguments and goes through the one
generic path, :meth:`Connection.call` / :meth:`Connection.stream`, so
deadlines, retries, request ids and error mapping behave the same everywhere.
Mutations take an optional ``request_id``; when it is None a fresh one is
generated so that retries of the call are applied once.

Example::

    async with Client.from_env() as client:
        users = await UserClient.connect(client)
        user = await users.create_user(email="ada@example.com", display_name="Ada")
        same = await users.get_user(user.id)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeVar

from google.protobuf import field_mask_pb2

from services.runtime._retry import MethodSpec
from switchboard.product.v1 import product_pb2, product_service_pb2
from switchboard.registry.v1 import registry_service_pb2
from switchboard.user.v1 import user_pb2, user_service_pb2

if TYPE_CHECKING:
    from services.runtime._client import Client, Connection

__all__ = ["ProductClient", "RegistryClient", "UserClient"]

_U = user_service_pb2
_P = product_service_pb2
_R = registry_service_pb2
_USER = "/switchboard.user.v1.UserService/"
_PRODUCT = "/switchboard.product.v1.ProductService/"
_REGISTRY = "/switchboard.registry.v1.RegistryService/"

C = TypeVar("C", bound="_TypedClient")

CREATE_USER: MethodSpec[_U.CreateUserRequest, _U.CreateUserResponse] = MethodSpec.of(
    _USER + "CreateUser"
)
GET_USER: MethodSpec[_U.GetUserRequest, _U.GetUserResponse] = MethodSpec.of(_USER + "GetUser")
LIST_USERS: MethodSpec[_U.ListUsersRequest, _U.ListUsersResponse] = MethodSpec.of(
    _USER + "ListUsers"
)
UPDATE_USER: MethodSpec[_U.UpdateUserRequest, _U.UpdateUserResponse] = MethodSpec.of(
    _USER + "UpdateUser"
)
DELETE_USER: MethodSpec[_U.DeleteUserRequest, _U.DeleteUserResponse] = MethodSpec.of(
    _USER + "DeleteUser"
)
WATCH_USERS: MethodSpec[_U.WatchUsersRequest, _U.WatchUsersResponse] = MethodSpec.of(
    _USER + "WatchUsers"
)
CREATE_PRODUCT: MethodSpec[_P.CreateProductRequest, _P.CreateProductResponse] = MethodSpec.of(
    _PRODUCT + "CreateProduct"
)
GET_PRODUCT: MethodSpec[_P.GetProductRequest, _P.GetProductResponse] = MethodSpec.of(
    _PRODUCT + "GetProduct"
)
LIST_PRODUCTS: MethodSpec[_P.ListProductsRequest, _P.ListProductsResponse] = MethodSpec.of(
    _PRODUCT + "ListProducts"
)
UPDATE_PRODUCT: MethodSpec[_P.UpdateProductRequest, _P.UpdateProductResponse] = MethodSpec.of(
    _PRODUCT + "UpdateProduct"
)
DELETE_PRODUCT: MethodSpec[_P.DeleteProductRequest, _P.DeleteProductResponse] = MethodSpec.of(
    _PRODUCT + "DeleteProduct"
)
RESERVE_STOCK: MethodSpec[_P.ReserveStockRequest, _P.ReserveStockResponse] = MethodSpec.of(
    _PRODUCT + "ReserveStock"
)
RELEASE_STOCK: MethodSpec[_P.ReleaseStockRequest, _P.ReleaseStockResponse] = MethodSpec.of(
    _PRODUCT + "ReleaseStock"
)
WATCH_PRODUCTS: MethodSpec[_P.WatchProductsRequest, _P.WatchProductsResponse] = MethodSpec.of(
    _PRODUCT + "WatchProducts"
)
RESOLVE: MethodSpec[_R.ResolveRequest, _R.ResolveResponse] = MethodSpec.of(_REGISTRY + "Resolve")
LIST_SERVICES: MethodSpec[_R.ListServicesRequest, _R.ListServicesResponse] = MethodSpec.of(
    _REGISTRY + "ListServices"
)
WATCH: MethodSpec[_R.WatchRequest, _R.WatchResponse] = MethodSpec.of(_REGISTRY + "Watch")


def _mask(**fields: Any) -> tuple[field_mask_pb2.FieldMask, dict[str, Any]]:
    """The update mask naming the fields that are not None, and those fields."""
    given = {name: value for name, value in fields.items() if value is not None}
    return field_mask_pb2.FieldMask(paths=sorted(given)), given


class _TypedClient:
    """A typed client over one :class:`Connection`; ``SERVICE`` is its registry name."""

    SERVICE = ""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @classmethod
    async def connect(cls: type[C], client: Client) -> C:
        """Connect ``client`` to this client's service. Example: ``await UserClient.connect(c)``."""
        return cls(await client.connect(cls.SERVICE))


class UserClient(_TypedClient):
    """Typed calls to ``switchboard.user.v1.UserService`` (registry name ``user``)."""

    SERVICE = "user"

    async def create_user(
        self,
        *,
        email: str,
        display_name: str,
        user_id: str = "",
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> user_pb2.User:
        """Create a user; retried safely under one request id. ``user_id`` chooses the id
        (1-63 of ``a-z0-9-``; :class:`errors.AlreadyExists` if taken); empty lets the
        server choose. Example:
        ``await users.create_user(email="ada@example.com", display_name="Ada", user_id="ada")``."""
        user = user_pb2.User(email=email, display_name=display_name)
        request = _U.CreateUserRequest(user=user, user_id=user_id, request_id=request_id or "")
        return (await self.conn.call(CREATE_USER, request, timeout_s=timeout_s)).user

    async def get_user(self, user_id: str, *, timeout_s: float | None = None) -> user_pb2.User:
        """The user with this id; :class:`errors.NotFound` if there is none."""
        request = _U.GetUserRequest(id=user_id)
        return (await self.conn.call(GET_USER, request, timeout_s=timeout_s)).user

    async def list_users(
        self, page_size: int = 0, page_token: str = "", *, timeout_s: float | None = None
    ) -> _U.ListUsersResponse:
        """One page of users (``.users``, ``.next_page_token``)."""
        request = _U.ListUsersRequest(page_size=page_size, page_token=page_token)
        return await self.conn.call(LIST_USERS, request, timeout_s=timeout_s)

    async def update_user(
        self,
        user_id: str,
        *,
        email: str | None = None,
        display_name: str | None = None,
        etag: str = "",
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> user_pb2.User:
        """Change the fields given (not None); ``etag`` makes it conditional."""
        mask, fields = _mask(email=email, display_name=display_name)
        user = user_pb2.User(id=user_id, etag=etag, **fields)
        request = _U.UpdateUserRequest(user=user, update_mask=mask, request_id=request_id or "")
        return (await self.conn.call(UPDATE_USER, request, timeout_s=timeout_s)).user

    async def delete_user(
        self,
        user_id: str,
        *,
        etag: str = "",
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> int:
        """Delete a user; returns the revision of the deletion."""
        request = _U.DeleteUserRequest(id=user_id, etag=etag, request_id=request_id or "")
        return (await self.conn.call(DELETE_USER, request, timeout_s=timeout_s)).revision

    async def watch_users(
        self, start_revision: int = 0, *, timeout_s: float | None = None
    ) -> AsyncIterator[user_pb2.UserEvent]:
        """The change log after ``start_revision``, then live changes. Not retried:
        after an error resume from the last ``event.revision`` you saw."""
        request = _U.WatchUsersRequest(start_revision=start_revision)
        async for message in self.conn.stream(WATCH_USERS, request, timeout_s=timeout_s):
            yield message.event


class ProductClient(_TypedClient):
    """Typed calls to ``switchboard.product.v1.ProductService`` (registry name ``product``)."""

    SERVICE = "product"

    async def create_product(
        self,
        *,
        sku: str,
        name: str,
        price: product_pb2.Money,
        seller_id: str,
        stock: int = 0,
        description: str = "",
        product_id: str = "",
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> product_pb2.Product:
        """Create a product. ``product_id`` chooses the id (1-63 of ``a-z0-9-``;
        :class:`errors.AlreadyExists` if taken); empty lets the server choose.
        Example: ``await products.create_product(sku="A-1", name="Lamp",
        price=Money(currency_code="EUR", amount_minor=1999), seller_id=user.id, stock=5)``."""
        product = product_pb2.Product(
            sku=sku,
            name=name,
            description=description,
            price=price,
            stock=stock,
            seller_id=seller_id,
        )
        request = _P.CreateProductRequest(
            product=product, product_id=product_id, request_id=request_id or ""
        )
        return (await self.conn.call(CREATE_PRODUCT, request, timeout_s=timeout_s)).product

    async def get_product(
        self, product_id: str, *, timeout_s: float | None = None
    ) -> product_pb2.Product:
        """The product with this id; :class:`errors.NotFound` if there is none."""
        request = _P.GetProductRequest(id=product_id)
        return (await self.conn.call(GET_PRODUCT, request, timeout_s=timeout_s)).product

    async def list_products(
        self,
        page_size: int = 0,
        page_token: str = "",
        *,
        seller_id: str = "",
        timeout_s: float | None = None,
    ) -> _P.ListProductsResponse:
        """One page of products (``.products``, ``.next_page_token``), optionally of one seller."""
        request = _P.ListProductsRequest(
            page_size=page_size, page_token=page_token, seller_id=seller_id
        )
        return await self.conn.call(LIST_PRODUCTS, request, timeout_s=timeout_s)

    async def update_product(
        self,
        product_id: str,
        *,
        sku: str | None = None,
        name: str | None = None,
        description: str | None = None,
        price: product_pb2.Money | None = None,
        stock: int | None = None,
        seller_id: str | None = None,
        etag: str = "",
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> product_pb2.Product:
        """Change the fields given (not None); ``etag`` makes it conditional."""
        mask, fields = _mask(
            sku=sku,
            name=name,
            description=description,
            price=price,
            stock=stock,
            seller_id=seller_id,
        )
        product = product_pb2.Product(id=product_id, etag=etag, **fields)
        request = _P.UpdateProductRequest(
            product=product, update_mask=mask, request_id=request_id or ""
        )
        return (await self.conn.call(UPDATE_PRODUCT, request, timeout_s=timeout_s)).product

    async def delete_product(
        self,
        product_id: str,
        *,
        etag: str = "",
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> int:
        """Delete a product; returns the revision of the deletion."""
        request = _P.DeleteProductRequest(id=product_id, etag=etag, request_id=request_id or "")
        return (await self.conn.call(DELETE_PRODUCT, request, timeout_s=timeout_s)).revision

    async def reserve_stock(
        self,
        product_id: str,
        quantity: int,
        *,
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> _P.ReserveStockResponse:
        """Reserve units (``.reservation``, ``.product``); a retry reserves nothing more."""
        request = _P.ReserveStockRequest(
            product_id=product_id, quantity=quantity, request_id=request_id or ""
        )
        return await self.conn.call(RESERVE_STOCK, request, timeout_s=timeout_s)

    async def release_stock(
        self,
        reservation_id: str,
        *,
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> _P.ReleaseStockResponse:
        """Put a reservation's units back (releasing twice is fine)."""
        request = _P.ReleaseStockRequest(reservation_id=reservation_id, request_id=request_id or "")
        return await self.conn.call(RELEASE_STOCK, request, timeout_s=timeout_s)

    async def watch_products(
        self, start_revision: int = 0, *, timeout_s: float | None = None
    ) -> AsyncIterator[product_pb2.ProductEvent]:
        """The change log after ``start_revision``, then live changes (resume on error)."""
        request = _P.WatchProductsRequest(start_revision=start_revision)
        async for message in self.conn.stream(WATCH_PRODUCTS, request, timeout_s=timeout_s):
            yield message.event


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
