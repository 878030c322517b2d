"""Request validation for the user service: every bad field is reported, not just the first.

Rules (from ``user.proto``):

- email: at most 254 characters, ``local@domain``; the local part is a
  dot-atom of printable ASCII (RFC 5322 without quoted strings), at most 64
  characters; the domain has at least two dot-separated labels of letters,
  digits and inner hyphens (internationalized domains in their ``xn--``
  form). Unique case-insensitively: :func:`email_key` is the compared form.
- display_name: 1 to 100 characters (code points), no control characters
  (Unicode category Cc: tabs, newlines, NUL, DEL, C1 controls).

Example::

    violations = Violations()
    check_email(violations, "user.email", "ada@example.com")
    check_display_name(violations, "user.display_name", "")
    violations.raise_if_any("invalid user")     # InvalidArgument with one violation
"""

from __future__ import annotations

import re
import unicodedata

from services.runtime.validation import Violations
from switchboard.user.v1 import user_pb2

__all__ = [
    "MAX_DISPLAY_NAME",
    "MAX_EMAIL",
    "READ_ONLY_PATHS",
    "UPDATABLE_PATHS",
    "check_display_name",
    "check_email",
    "check_user",
    "email_key",
]

MAX_EMAIL = 254
MAX_LOCAL_PART = 64
MAX_DISPLAY_NAME = 100

UPDATABLE_PATHS = frozenset({"email", "display_name"})
READ_ONLY_PATHS = frozenset({"id", "create_time", "update_time", "etag"})

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")


def email_key(email: str) -> str:
    """The form emails are compared in for uniqueness (ASCII only, so lower() is exact).

    Example: ``email_key("Ada@Example.COM") == "ada@example.com"``.
    """
    return email.lower()


def check_user(violations: Violations, user: user_pb2.User, paths: frozenset[str]) -> None:
    """Record every bad field of ``user`` among ``paths`` (all of them for a create)."""
    if "email" in paths:
        check_email(violations, "user.email", user.email)
    if "display_name" in paths:
        check_display_name(violations, "user.display_name", user.display_name)


def check_email(violations: Violations, field: str, email: str) -> None:
    """Record why ``email`` is not a valid address, if it is not."""
    if not email:
        violations.add(field, "is required")
    elif len(email) > MAX_EMAIL:
        violations.add(field, f"must be at most {MAX_EMAIL} characters")
    elif not _email_shape_ok(email):
        violations.add(field, "must be an address of the form local@domain.tld")


def _email_shape_ok(email: str) -> bool:
    local, at, domain = email.rpartition("@")
    if not at or len(local) > MAX_LOCAL_PART:
        return False
    return bool(_LOCAL.fullmatch(local) and _DOMAIN.fullmatch(domain))


def check_display_name(violations: Violations, field: str, name: str) -> None:
    """Record why ``name`` is not a valid display name, if it is not."""
    if not name:
        violations.add(field, f"is required (1 to {MAX_DISPLAY_NAME} characters)")
    elif len(name) > MAX_DISPLAY_NAME:
        violations.add(field, f"must be at most {MAX_DISPLAY_NAME} characters")
    elif any(unicodedata.category(char) == "Cc" for char in name):
        violations.add(field, "must not contain control characters")
