"""Who may write: the bearer-token check and the mTLS certificate → service binding.

Reads are open. Write calls (Register, Heartbeat, KeepAlive, Deregister) run
:meth:`WriteGuard.check_token` first; with a token configured they need exactly
one ``authorization: Bearer <token>`` metadata entry. With mTLS on, a client
may register only under a service its certificate names (CN or a SAN), and a
lease belongs to the certificate identity (its set of names) that registered
it: no other client may renew, deregister or replace it. Reading a certificate's
names is the runtime's (:func:`services.runtime.auth.certificate_names`), shared
with the per-call policy check that ``--auth`` turns on for every service.

Example::

    guard = WriteGuard(token="s3cret", bind_certificates=False)
    guard.check_token(context)            # raises errors.Unauthenticated if absent or wrong
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from services.runtime import errors
from services.runtime.auth import certificate_names

if TYPE_CHECKING:
    import grpc.aio

__all__ = ["WriteGuard"]

_AUTH_KEY = "authorization"
_CERT_NAME_KEYS = ("x509_common_name", "x509_subject_alternative_name")


class WriteGuard:
    """The registry's single place for write authorization.

    The token is compared with ``hmac.compare_digest`` (constant time); an
    error never says whether a token was close, nor repeats what was sent.
    """

    def __init__(self, token: str | None, *, bind_certificates: bool = False) -> None:
        self._token = token.encode() if token is not None else None
        self._bind_certificates = bind_certificates

    def check_token(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Raise ``Unauthenticated`` unless the call carries the configured token."""
        if self._token is None:
            return
        sent = [v for k, v in context.invocation_metadata() or () if k == _AUTH_KEY]
        if not sent:
            raise errors.Unauthenticated(
                "this registry needs 'authorization: Bearer <token>' for writes",
                reason="TOKEN_MISSING",
            )
        if len(sent) != 1 or not self._matches(sent[0]):
            raise errors.Unauthenticated("invalid bearer token", reason="TOKEN_INVALID")

    def _matches(self, value: str | bytes) -> bool:
        """True for ``Bearer <token>`` (scheme case-insensitive) with the right token."""
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        scheme, _, credentials = text.partition(" ")
        assert self._token is not None
        same = hmac.compare_digest(credentials.strip().encode("utf-8", "replace"), self._token)
        return scheme.lower() == "bearer" and same

    def check_service(self, context: grpc.aio.ServicerContext[Any, Any], service: str) -> None:
        """With mTLS, raise ``PermissionDenied`` unless the client cert names ``service``."""
        if not self._bind_certificates:
            return
        names = certificate_names(context.auth_context())
        if service not in names:
            raise errors.PermissionDenied(
                f"the client certificate may not register service {service!r}",
                reason="CERTIFICATE_SERVICE_MISMATCH",
                metadata={"service": service},
            )

    def owner(self, context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
        """With mTLS, the caller's certificate identity (its names, sorted); else None.

        Example: a certificate with CN ``user`` and SAN ``host-a`` → ``"host-a"``,
        a newline, ``"user"``.
        """
        if not self._bind_certificates:
            return None
        return "\n".join(sorted(certificate_names(context.auth_context())))
