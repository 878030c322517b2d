"""The per-call check: authenticate the caller, apply the policy, write the audit line.

:class:`Authorizer` is built once per server from the policy; the server's
wrapper asks it for each method's :class:`MethodGate` once, when it wraps that
method's handler. A method that is always open (health, and reflection when the
policy says ``open``) gets no gate at all, so with auth off or on an open method
a call pays nothing.

A call's answers:

    no credentials, or a bad token        UNAUTHENTICATED  TOKEN_MISSING / TOKEN_INVALID /
                                                           TOKEN_EXPIRED / TOKEN_NOT_YET_VALID
    valid, but no rule allows it          PERMISSION_DENIED SCOPE_MISSING / ROLE_MISSING /
                                                           PRINCIPAL_DENIED

Example::

    authorizer = Authorizer(load_policy(path), mtls=config.mtls)
    gate = authorizer.gate_for("/helloworld.v1.Greeter/SayHello")
    principal = gate.admit(context)         # raises Unauthenticated / PermissionDenied
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor_pb2 import MethodOptions
from google.protobuf.message import Message

from services.runtime.auth._identity import (
    CALLER_KEY,
    Principal,
    bind_principal,
    certificate_names,
    current_principal,
    plain_subject,
)
from services.runtime.auth._policy import Policy, Rule
from services.runtime.auth._tokens import TokenVerifier
from services.runtime.errors import PermissionDenied, Unauthenticated

if TYPE_CHECKING:
    import grpc.aio

__all__ = ["Authorizer", "MethodGate", "audit_log", "resource_id"]

audit_log = logging.getLogger("switchboard.audit")

_AUTH_KEY = "authorization"
_TRACEPARENT_KEY = "traceparent"
_DENIED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
_SKIPPED_ID_FIELDS = {"request_id", "page_token", "etag"}


class Authorizer:
    """One server's authentication and policy; see :meth:`gate_for`.

    ``open_services`` are never checked (the health service); ``reflection``
    names the reflection services, open or not as the policy says.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        mtls: bool,
        open_services: Collection[str] = (),
        reflection: Collection[str] = (),
    ) -> None:
        self.policy = policy
        self._verifier = TokenVerifier(policy.tokens) if policy.tokens is not None else None
        self._mtls = mtls
        self._open = frozenset(open_services)
        self._reflection = frozenset(reflection)

    def gate_for(self, method: str) -> MethodGate | None:
        """The gate of ``/package.Service/Method``, or None when it is always open."""
        name = method.removeprefix("/")
        service = name.partition("/")[0]
        if service in self._open:
            return None
        if service in self._reflection:
            if self.policy.reflection == "open":
                return None
            rules: tuple[Rule, ...] = (Rule(methods=(name,), authenticated=True),)
        else:
            rules = self.policy.rules_for(name)
        return MethodGate(self, name, rules, mutation=_is_mutation(name))

    def authenticate(self, context: grpc.aio.ServicerContext[Any, Any]) -> Principal:
        """The caller's principal; :class:`Unauthenticated` without valid credentials."""
        tokens: list[str | bytes] = []
        caller = None
        for key, value in context.invocation_metadata() or ():
            if key == _AUTH_KEY:
                tokens.append(value)
            elif key == CALLER_KEY:
                caller = plain_subject(value)
        services = frozenset(certificate_names(context.auth_context())) if self._mtls else None
        if not tokens:
            if not services:
                raise Unauthenticated("this call needs credentials", reason="TOKEN_MISSING")
            return Principal(services=services, on_behalf_of=caller)
        claims = self._verify(tokens)
        return Principal(services=services or frozenset(), claims=claims, on_behalf_of=caller)

    def _verify(self, values: list[str | bytes]) -> Any:
        if len(values) != 1 or self._verifier is None or not isinstance(values[0], str):
            raise Unauthenticated("invalid bearer token", reason="TOKEN_INVALID")
        scheme, _, token = values[0].partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("invalid bearer token", reason="TOKEN_INVALID")
        return self._verifier.verify(token.strip())


class MethodGate:
    """The check of one method: its covering rules, whether it changes state."""

    __slots__ = ("_authorizer", "method", "mutation", "rules")

    def __init__(
        self, authorizer: Authorizer, method: str, rules: tuple[Rule, ...], *, mutation: bool
    ) -> None:
        self._authorizer = authorizer
        self.method = method
        self.rules = rules
        self.mutation = mutation

    def admit(self, context: grpc.aio.ServicerContext[Any, Any]) -> Principal:
        """Authenticate and authorize the call (binding its principal) or raise."""
        principal = self._authorizer.authenticate(context)
        bind_principal(principal)
        for rule in self.rules:
            if rule.allows(principal):
                return principal
        raise self._denied(principal)

    def _denied(self, principal: Principal) -> PermissionDenied:
        """PERMISSION_DENIED with the broad reason; never the scope or role it lacked."""
        claims = principal.claims
        reason = "PRINCIPAL_DENIED"
        if claims is not None:
            if any(not rule.scopes <= claims.scopes for rule in self.rules):
                reason = "SCOPE_MISSING"
            elif any(rule.roles and not rule.roles & claims.roles for rule in self.rules):
                reason = "ROLE_MISSING"
        return PermissionDenied("the caller may not call this method", reason=reason)

    def audit(
        self,
        code: grpc.StatusCode,
        request_id: str,
        messages: tuple[Any, ...],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        """One audit line for a denied call or a mutation (whatever its outcome).

        ``messages`` are the request and, when there is one, the response: the
        resource id is the request's, else the response's (a server-chosen id).
        """
        if not (self.mutation or code in _DENIED) or not audit_log.isEnabledFor(logging.INFO):
            return
        principal = current_principal()
        fields = {
            "principal": principal.name if principal is not None else "-",
            "on_behalf_of": (principal and principal.on_behalf_of) or "-",
            "method": self.method,
            "resource": next(filter(None, map(resource_id, messages)), "-"),
            "code": code.name,
            "request_id": request_id,
            "trace_id": _trace_id(context.invocation_metadata() or ()) or "-",
        }
        audit_log.info(" ".join(f"{k}={v}" for k, v in fields.items()), extra=fields)


def resource_id(message: Any) -> str | None:
    """The id of the resource a request names: its first non-empty ``id``/``*_id``/``name``
    string field (the idempotency key and page token are not ids), one level deep.

    Example: ``resource_id(GetGreetingRequest(id="g1")) == "g1"``.
    """
    if not isinstance(message, Message):
        return None
    nested = []
    for field, value in message.ListFields():
        if field.message_type is not None:
            nested.append(value)
        elif isinstance(value, str) and _is_id_field(field.name):
            return value
    for inner in nested:
        if isinstance(inner, Message):
            found = resource_id_flat(inner)
            if found:
                return found
    return None


def resource_id_flat(message: Message) -> str | None:
    """Like :func:`resource_id`, top-level fields only."""
    for field, value in message.ListFields():
        if isinstance(value, str) and _is_id_field(field.name):
            return value
    return None


def _is_id_field(name: str) -> bool:
    if name in _SKIPPED_ID_FIELDS:
        return False
    return name in ("id", "name") or name.endswith("_id")


def _trace_id(metadata: Iterable[Any]) -> str | None:
    """The trace id of a W3C ``traceparent`` header (``00-<trace id>-<span id>-<flags>``)."""
    for key, value in metadata:
        if key == _TRACEPARENT_KEY and isinstance(value, str):
            parts = value.split("-")
            if len(parts) == 4 and len(parts[1]) == 32 and parts[1].isalnum():
                return parts[1]
    return None


def _is_mutation(method: str) -> bool:
    """False only for a method its contract marks ``idempotency_level = NO_SIDE_EFFECTS``."""
    try:
        found = descriptor_pool.Default().FindMethodByName(method.replace("/", "."))
    except KeyError:
        return True
    level: int = found.GetOptions().idempotency_level
    return level != MethodOptions.NO_SIDE_EFFECTS
