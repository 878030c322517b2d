"""Servicer helpers for the standard methods: the checks every Create/Update/Delete/List makes.

A servicer validates its resource's own fields into a :class:`Violations`,
then lets these helpers add the shared checks (request_id, chosen id,
resource id, update mask), raise every violation as one INVALID_ARGUMENT,
and build the idempotency key.

Example::

    violations = Violations()
    check_isbn(violations, "book.isbn", request.book.isbn)          # the service's own rules
    key = request_key(violations, "CreateBook", request, chosen_id="book_id")
    return await store.create(request.book, request.book_id, key, CreateBookResponse)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from google.protobuf.message import Message

from services.runtime.paging import PageTokens, page_size
from services.runtime.storage._idempotency import RequestKey
from services.runtime.storage._resource import Page
from services.runtime.validation import (
    Violations,
    check_chosen_id,
    check_id,
    check_idempotency_key,
    check_update_mask,
)

if TYPE_CHECKING:
    import grpc.aio

__all__ = ["Context", "list_page", "request_key", "update_paths"]

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
"""The context argument of a grpc.aio servicer method."""

R = TypeVar("R", bound=Message)


def request_key(
    violations: Violations,
    method: str,
    request: Any,
    *,
    required: bool = False,
    chosen_id: str = "",
) -> RequestKey | None:
    """Check ``request.request_id`` (and, for a Create, the client-chosen id field
    ``chosen_id``, AIP-133), raise every violation, and return the request's key.

    Example: ``key = request_key(violations, "CreateBook", request, chosen_id="book_id")``.
    """
    check_idempotency_key(violations, "request_id", request.request_id, required=required)
    if chosen_id:
        check_chosen_id(violations, chosen_id, getattr(request, chosen_id))
    violations.raise_if_any(f"invalid {method} request")
    return RequestKey.of(method, request.request_id, request)


def update_paths(
    violations: Violations,
    request: Any,
    resource_field: str,
    updatable: frozenset[str],
    read_only: frozenset[str],
) -> frozenset[str]:
    """Check an Update request's resource id and ``update_mask``; the paths to change.

    Example: ``update_paths(violations, request, "book", UPDATABLE, READ_ONLY)``.
    """
    check_id(violations, f"{resource_field}.id", getattr(request, resource_field).id)
    return check_update_mask(violations, request.update_mask, updatable, read_only)


async def list_page(
    tokens: PageTokens,
    request: Any,
    query: tuple[str, ...],
    fetch: Callable[[str | None, int], Awaitable[Page[R]]],
) -> tuple[list[R], str]:
    """One List page and its next page token ("" on the last page), per AIP-158.

    ``query`` names the collection and every filter: a token is only good for it.
    Example: ``books, token = await list_page(tokens, request, ("books",), store.list)``.
    """
    size = page_size(request.page_size)
    after = tokens.verify(request.page_token, *query)
    page = await fetch(after, size)
    token = tokens.issue(_id(page.items[-1]), *query) if page.more else ""
    return page.items, token


def _id(resource: Message) -> str:
    return str(resource.id)  # type: ignore[attr-defined]
