"""Request validation shared by every service: ids, request ids, update masks.

A service's own field rules (``services/<name>/_validate.py``) build on
:class:`Violations`. Every check *records* a violation instead of raising,
so a request with three bad fields gets three violations in one
INVALID_ARGUMENT. Ids and request ids are bounded here before the stores
use them as keys.

Example::

    violations = Violations()
    check_id(violations, "id", request.id)
    check_idempotency_key(violations, "request_id", request.request_id, required=False)
    violations.raise_if_any("invalid request")
"""

from __future__ import annotations

import re

from google.protobuf.field_mask_pb2 import FieldMask

from services.runtime.errors import InvalidArgument

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "Violations",
    "check_chosen_id",
    "check_id",
    "check_idempotency_key",
    "check_update_mask",
    "require_id",
]

MAX_ID_LENGTH = 64
"""Server-assigned ids are 32 characters; anything above 64 is surely not one."""

MAX_IDEMPOTENCY_KEY_LENGTH = 64
"""The contracts bound every request_id to 64 characters."""


_CHOSEN_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


class Violations:
    """Collects (field, description) pairs, then raises them all as one InvalidArgument."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, description: str) -> None:
        """Record one bad field."""
        self.items.append((field, description))

    def raise_if_any(self, message: str) -> None:
        """Raise InvalidArgument listing every recorded violation, if there is one."""
        if self.items:
            raise InvalidArgument(message, violations=self.items)


def check_id(violations: Violations, field: str, value: str) -> None:
    """Record a missing or over-long resource id."""
    if not value:
        violations.add(field, "is required")
    elif len(value) > MAX_ID_LENGTH:
        violations.add(field, f"must be at most {MAX_ID_LENGTH} characters")


def require_id(field: str, value: str, method: str) -> None:
    """For a request that is just an id (Get): InvalidArgument unless ``value`` can be one.

    Example: ``require_id("id", request.id, "GetUser")``.
    """
    violations = Violations()
    check_id(violations, field, value)
    violations.raise_if_any(f"invalid {method} request")


def check_chosen_id(violations: Violations, field: str, value: str) -> None:
    """Record a client-chosen id (AIP-133) that is not 1-63 of ``a-z``, ``0-9``, ``-``,
    starting with a letter or digit. Empty is fine: the server chooses.

    Example: ``check_chosen_id(v, "user_id", "ada")`` records nothing.
    """
    if value and not _CHOSEN_ID.fullmatch(value):
        violations.add(
            field, "must be 1 to 63 of a-z, 0-9 and '-', starting with a letter or digit"
        )


def check_idempotency_key(
    violations: Violations, field: str, value: str, *, required: bool
) -> None:
    """Record an over-long (or, when required, missing) idempotency key."""
    if required and not value:
        violations.add(field, "is required (an idempotency key, e.g. a UUID)")
    elif len(value) > MAX_IDEMPOTENCY_KEY_LENGTH:
        violations.add(field, f"must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters")


def check_update_mask(
    violations: Violations, mask: FieldMask, updatable: frozenset[str], read_only: frozenset[str]
) -> frozenset[str]:
    """The mask's paths; records an empty mask and each unknown or read-only path.

    Example: ``check_update_mask(v, mask, frozenset({"email"}), frozenset({"id"}))``.
    """
    if not mask.paths:
        fields = _names(updatable)
        violations.add("update_mask", f"is required: name the fields to change ({fields})")
    for path in mask.paths:
        if path in read_only:
            violations.add("update_mask", f"path {path!r} is read-only")
        elif path not in updatable:
            violations.add("update_mask", f"unknown path {path!r}: use {_names(updatable)}")
    return frozenset(mask.paths) & updatable


def _names(paths: frozenset[str]) -> str:
    return ", ".join(sorted(paths))
