"""Who is calling: service names from a client certificate, claims from a bearer token.

The server's per-call wrapper puts the caller's :class:`Principal` in a
contextvar for the handler; outgoing calls made while handling it carry the
original end-user subject in ``x-switchboard-caller`` — for audit lines only,
never as authority (a service's calls are authorized as that service).

Example::

    principal = current_principal()            # None when auth is off
    principal.name if principal else "-"       # "alice" or "service:greeter"
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass

from services.runtime.auth._tokens import Claims

__all__ = [
    "CALLER_KEY",
    "Principal",
    "bind_principal",
    "caller_subject",
    "certificate_names",
    "current_principal",
]

CALLER_KEY = "x-switchboard-caller"
"""Metadata key of the end user a service calls on behalf of (audit only)."""

_CERT_NAME_KEYS = ("x509_common_name", "x509_subject_alternative_name")
_MAX_SUBJECT = 128

_principal: ContextVar[Principal | None] = ContextVar("switchboard_principal", default=None)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: certificate names, token claims, or both.

    ``on_behalf_of`` is what an upstream service said about its own caller;
    it is logged, never trusted.
    """

    services: frozenset[str] = frozenset()
    claims: Claims | None = None
    on_behalf_of: str | None = None

    @property
    def name(self) -> str:
        """For logs: the token subject, else ``service:<names>``."""
        if self.claims is not None:
            return self.claims.subject
        return "service:" + ",".join(sorted(self.services)) if self.services else "-"


def certificate_names(auth_context: Mapping[str, Iterable[bytes]]) -> set[str]:
    """The names a peer's certificate carries: its CN and subject alternative names.

    Example: ``certificate_names({"x509_common_name": [b"greeter"]}) == {"greeter"}``.
    """
    names: set[str] = set()
    for key in _CERT_NAME_KEYS:
        for raw in auth_context.get(key, ()):
            names.add(raw.decode("utf-8", "replace"))
    return names


def bind_principal(principal: Principal | None) -> None:
    """Make ``principal`` the caller for the rest of this call's context."""
    _principal.set(principal)


def current_principal() -> Principal | None:
    """The caller of the call being handled (None outside a call or with auth off)."""
    return _principal.get()


def caller_subject() -> str | None:
    """The end user on whose behalf outgoing calls are made, for ``x-switchboard-caller``.

    The token subject of the call being handled, else what that call's
    caller said (passed on as it came). Example: ``"alice"`` inside a handler serving alice.
    """
    principal = _principal.get()
    if principal is None:
        return None
    if principal.claims is not None:
        return principal.claims.subject
    return principal.on_behalf_of


def plain_subject(value: str | bytes) -> str | None:
    """A caller subject safe to log: printable ASCII, no spaces, at most 128 characters."""
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_SUBJECT:
        return None
    return value if value.isascii() and value.isprintable() and " " not in value else None
