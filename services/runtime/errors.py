"""Switchboard's error hierarchy: one typed exception per gRPC status code.

A handler raises one of these; the server's error-mapping interceptor turns
it into a gRPC status whose ``grpc-status-details-bin`` trailer carries a
``google.rpc.Status`` with rich details. A client turns the ``grpc.RpcError``
it receives back into the same typed exception with :func:`from_rpc_error`.

::

    SwitchboardError                  (carries code, reason, message, metadata, details)
    ├── Cancelled                     CANCELLED
    ├── Unknown                       UNKNOWN
    ├── InvalidArgument               INVALID_ARGUMENT    + google.rpc.BadRequest
    ├── DeadlineExceeded              DEADLINE_EXCEEDED
    ├── NotFound                      NOT_FOUND           + google.rpc.ResourceInfo
    ├── AlreadyExists                 ALREADY_EXISTS      + google.rpc.ResourceInfo
    ├── PermissionDenied              PERMISSION_DENIED
    ├── ResourceExhausted             RESOURCE_EXHAUSTED  + google.rpc.RetryInfo (optional)
    ├── FailedPrecondition            FAILED_PRECONDITION
    ├── Aborted                       ABORTED             + google.rpc.RetryInfo (optional)
    ├── OutOfRange                    OUT_OF_RANGE
    ├── Unimplemented                 UNIMPLEMENTED
    ├── Internal                      INTERNAL
    ├── Unavailable                   UNAVAILABLE         + google.rpc.RetryInfo (optional)
    ├── DataLoss                      DATA_LOSS
    └── Unauthenticated               UNAUTHENTICATED

Every error also carries a ``google.rpc.ErrorInfo`` with a stable
UPPER_SNAKE_CASE ``reason``, the domain ``switchboard.dev`` and string
metadata. Example::

    raise NotFound.for_resource("helloworld.Greeting", "greetings/42", reason="GREETING_NOT_FOUND")

    try:
        await stub.GetUser(request)
    except grpc.aio.AioRpcError as rpc_error:
        err = from_rpc_error(rpc_error)   # NotFound, err.resource_name == "greetings/42"
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import grpc
from google.protobuf import any_pb2, descriptor_pool, message_factory
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf.message import Message
from google.rpc import (  # type: ignore[import-untyped, unused-ignore]
    error_details_pb2,
    status_pb2,
)
from grpc_status import rpc_status  # type: ignore[import-untyped, unused-ignore]

__all__ = [
    "DOMAIN",
    "Aborted",
    "AlreadyExists",
    "Cancelled",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "SwitchboardError",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "error_class_for",
    "from_rpc_error",
]

DOMAIN = "switchboard.dev"
"""The ``google.rpc.ErrorInfo.domain`` every Switchboard error carries."""

_DETAILS_KEY = "grpc-status-details-bin"


class FieldViolation(NamedTuple):
    """One bad field of a request, as in ``google.rpc.BadRequest``.

    Example: ``FieldViolation("user.email", "must contain '@'")``.
    """

    field: str
    description: str


class SwitchboardError(Exception):
    """Base of every error a Switchboard service sends or a client receives.

    Subclasses fix ``code``; ``reason`` defaults to the code's name.

    Example::

        raise FailedPrecondition("stock is reserved", reason="STOCK_RESERVED",
                                 metadata={"sku": "A-1"})
    """

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str = "",
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        details: Sequence[Message] = (),
    ) -> None:
        self.message = message or self.code.name.lower().replace("_", " ")
        self.reason = reason or self.code.name
        self.metadata: dict[str, str] = dict(metadata or {})
        self.details: tuple[Message, ...] = tuple(details)
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, reason={self.reason!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SwitchboardError):
            return NotImplemented
        return type(self) is type(other) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash((type(self), self._key()))

    def _key(self) -> tuple[Any, ...]:
        # Compare details by their packed bytes: a round trip may turn a message
        # whose type is not in the descriptor pool into a plain Any.
        packed = tuple(_pack(d).SerializeToString(deterministic=True) for d in self.details)
        return (self.code, self.reason, self.message, tuple(sorted(self.metadata.items())), packed)

    def error_info(self) -> Message:
        """The ``google.rpc.ErrorInfo`` for this error.

        Example: ``NotFound("x").error_info().reason == "NOT_FOUND"``.
        """
        info: Message = error_details_pb2.ErrorInfo(
            reason=self.reason, domain=DOMAIN, metadata=self.metadata
        )
        return info

    def typed_details(self) -> list[Message]:
        """Details that subclasses derive from their own fields (none here)."""
        return []

    def to_status_proto(self) -> Any:
        """The ``google.rpc.Status`` message: code, message and packed details."""
        messages = [self.error_info(), *self.typed_details(), *self.details]
        return status_pb2.Status(
            code=self.code.value[0],
            message=self.message,
            details=[_pack(m) for m in messages],
        )

    def to_status(self) -> grpc.Status:
        """The ``grpc.Status`` to pass to ``context.abort_with_status``.

        Example: ``await context.abort_with_status(err.to_status())``.
        """
        status: grpc.Status = rpc_status.to_status(self.to_status_proto())
        return status

    @classmethod
    def _from_parts(cls, parts: _Parts) -> SwitchboardError:
        """Rebuild an error of this class from a parsed status (client side)."""
        return cls(parts.message, reason=parts.reason, metadata=parts.metadata, details=parts.rest)


class _Parts(NamedTuple):
    """A parsed ``google.rpc.Status``: the ErrorInfo fields plus the other details."""

    message: str
    reason: str | None
    metadata: dict[str, str]
    bad_request: Any | None
    resource_info: Any | None
    retry_info: Any | None
    rest: tuple[Message, ...]


class Cancelled(SwitchboardError):
    """The call was cancelled, usually by the caller."""

    code = grpc.StatusCode.CANCELLED


class Unknown(SwitchboardError):
    """An error from an unknown source, or an error with no better code."""

    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(SwitchboardError):
    """The request is malformed; ``violations`` name the bad fields.

    Example::

        raise InvalidArgument("invalid user", violations=[("email", "must contain '@'")])
    """

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(
        self,
        message: str = "",
        *,
        violations: Iterable[tuple[str, str]] = (),
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        details: Sequence[Message] = (),
    ) -> None:
        self.violations = tuple(FieldViolation(f, d) for f, d in violations)
        super().__init__(message, reason=reason, metadata=metadata, details=details)

    def _key(self) -> tuple[Any, ...]:
        return (*super()._key(), self.violations)

    def typed_details(self) -> list[Message]:
        if not self.violations:
            return []
        violation = error_details_pb2.BadRequest.FieldViolation
        bad: Message = error_details_pb2.BadRequest(
            field_violations=[violation(field=f, description=d) for f, d in self.violations]
        )
        return [bad]

    @classmethod
    def _from_parts(cls, parts: _Parts) -> SwitchboardError:
        violations = []
        if parts.bad_request is not None:
            violations = [(v.field, v.description) for v in parts.bad_request.field_violations]
        return cls(
            parts.message,
            violations=violations,
            reason=parts.reason,
            metadata=parts.metadata,
            details=parts.rest,
        )


class _ResourceError(SwitchboardError):
    """An error about one named resource (``google.rpc.ResourceInfo``)."""

    _verb: ClassVar[str] = ""

    def __init__(
        self,
        message: str = "",
        *,
        resource_type: str = "",
        resource_name: str = "",
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        details: Sequence[Message] = (),
    ) -> None:
        self.resource_type = resource_type
        self.resource_name = resource_name
        super().__init__(message, reason=reason, metadata=metadata, details=details)

    @classmethod
    def for_resource(
        cls, resource_type: str, resource_name: str, *, reason: str | None = None
    ) -> _ResourceError:
        """Build the error with a standard message.

        Example: ``NotFound.for_resource("Greeting", "greetings/42")`` says
        ``Greeting 'greetings/42' not found``.
        """
        message = f"{resource_type} {resource_name!r} {cls._verb}"
        return cls(message, resource_type=resource_type, resource_name=resource_name, reason=reason)

    def _key(self) -> tuple[Any, ...]:
        return (*super()._key(), self.resource_type, self.resource_name)

    def typed_details(self) -> list[Message]:
        if not (self.resource_type or self.resource_name):
            return []
        info: Message = error_details_pb2.ResourceInfo(
            resource_type=self.resource_type,
            resource_name=self.resource_name,
            description=self.message,
        )
        return [info]

    @classmethod
    def _from_parts(cls, parts: _Parts) -> SwitchboardError:
        info = parts.resource_info
        return cls(
            parts.message,
            resource_type=info.resource_type if info is not None else "",
            resource_name=info.resource_name if info is not None else "",
            reason=parts.reason,
            metadata=parts.metadata,
            details=parts.rest,
        )


class NotFound(_ResourceError):
    """The named resource does not exist."""

    code = grpc.StatusCode.NOT_FOUND
    _verb = "not found"


class AlreadyExists(_ResourceError):
    """A resource with that name (or unique key) already exists."""

    code = grpc.StatusCode.ALREADY_EXISTS
    _verb = "already exists"


class DeadlineExceeded(SwitchboardError):
    """The deadline passed before the work finished."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class PermissionDenied(SwitchboardError):
    """The caller is known but may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED


class _RetryableError(SwitchboardError):
    """An error that may tell the caller when to retry (``google.rpc.RetryInfo``)."""

    def __init__(
        self,
        message: str = "",
        *,
        retry_delay: float | None = None,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        details: Sequence[Message] = (),
    ) -> None:
        self.retry_delay = retry_delay
        super().__init__(message, reason=reason, metadata=metadata, details=details)

    def _key(self) -> tuple[Any, ...]:
        return (*super()._key(), self.retry_delay)

    def typed_details(self) -> list[Message]:
        if self.retry_delay is None:
            return []
        delay = _duration_pb2.Duration()
        delay.FromNanoseconds(round(self.retry_delay * 1e9))
        info: Message = error_details_pb2.RetryInfo(retry_delay=delay)
        return [info]

    @classmethod
    def _from_parts(cls, parts: _Parts) -> SwitchboardError:
        delay = None
        if parts.retry_info is not None:
            delay = parts.retry_info.retry_delay.ToNanoseconds() / 1e9
        return cls(
            parts.message,
            retry_delay=delay,
            reason=parts.reason,
            metadata=parts.metadata,
            details=parts.rest,
        )


class ResourceExhausted(_RetryableError):
    """A quota or limit ran out; ``retry_delay`` (seconds) says when to try again.

    Example: ``raise ResourceExhausted("rate limited", retry_delay=1.5)``.
    """

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(SwitchboardError):
    """The system is not in a state where this can be done (do not retry as is)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(_RetryableError):
    """A concurrency conflict (etag mismatch, aborted transaction): retry the sequence."""

    code = grpc.StatusCode.ABORTED


class OutOfRange(SwitchboardError):
    """The request went past a valid range (a page token past the end, ...)."""

    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(SwitchboardError):
    """The method is not implemented or not supported."""

    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(SwitchboardError):
    """An invariant broke inside the server; the message never says which."""

    code = grpc.StatusCode.INTERNAL


class Unavailable(_RetryableError):
    """The service cannot answer now; a retry later may succeed."""

    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(SwitchboardError):
    """Unrecoverable data loss or corruption."""

    code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(SwitchboardError):
    """The caller sent no valid credentials."""

    code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: dict[grpc.StatusCode, type[SwitchboardError]] = {
    cls.code: cls
    for cls in (
        Cancelled,
        Unknown,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        Unimplemented,
        Internal,
        Unavailable,
        DataLoss,
        Unauthenticated,
    )
}


def error_class_for(code: grpc.StatusCode) -> type[SwitchboardError]:
    """The typed error class for a status code (``OK`` maps to ``Unknown``).

    Example: ``error_class_for(grpc.StatusCode.NOT_FOUND) is NotFound``.
    """
    return _BY_CODE.get(code, Unknown)


def from_rpc_error(err: grpc.RpcError) -> SwitchboardError:
    """Turn a failed call (sync ``grpc.RpcError`` or ``grpc.aio.AioRpcError``) into a typed error.

    Details from the ``grpc-status-details-bin`` trailer fill the typed fields;
    a call without them (a client-side deadline, a proxy) still gets the class
    for its code and ``reason`` equal to the code's name.

    Example::

        except grpc.aio.AioRpcError as rpc_error:
            raise from_rpc_error(rpc_error) from rpc_error
    """
    code, message, trailers = _call_parts(err)
    cls = error_class_for(code)
    status = _rich_status(trailers, code)
    if status is None:
        return cls(message)
    return cls._from_parts(_split_details(status))


def _call_parts(err: grpc.RpcError) -> tuple[grpc.StatusCode, str, Sequence[tuple[str, Any]]]:
    """Code, message and trailing metadata of a sync or aio failed call."""
    if isinstance(err, grpc.aio.AioRpcError | grpc.Call):
        trailers = err.trailing_metadata() or ()
        return err.code(), err.details() or "", tuple(trailers)
    # A bare RpcError (a test double, an odd wrapper) has no status to read.
    return grpc.StatusCode.UNKNOWN, str(err), ()


def _rich_status(trailers: Sequence[tuple[str, Any]], code: grpc.StatusCode) -> Any | None:
    """The ``google.rpc.Status`` in the trailers, if present and consistent with ``code``.

    ``rpc_status.from_call`` does the same but raises when a proxy rewrote the
    code or message; here a mismatch just means "no rich details".
    """
    for key, value in trailers:
        if key != _DETAILS_KEY:
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except Exception:  # a malformed trailer from someone else's server
            return None
        return status if status.code == code.value[0] else None
    return None


def _split_details(status: Any) -> _Parts:
    """Sort the packed details into the known kinds and the rest."""
    known: dict[str, Any] = {}
    rest: list[Message] = []
    for packed in status.details:
        name = packed.TypeName()
        if name in _KNOWN_DETAILS and name not in known:
            message = _KNOWN_DETAILS[name]()
            packed.Unpack(message)
            known[name] = message
        else:
            rest.append(_unpack_any(packed))
    info = known.get("google.rpc.ErrorInfo")
    return _Parts(
        message=status.message,
        reason=info.reason if info is not None and info.reason else None,
        metadata=dict(info.metadata) if info is not None else {},
        bad_request=known.get("google.rpc.BadRequest"),
        resource_info=known.get("google.rpc.ResourceInfo"),
        retry_info=known.get("google.rpc.RetryInfo"),
        rest=tuple(rest),
    )


_KNOWN_DETAILS: dict[str, type[Message]] = {
    "google.rpc.ErrorInfo": error_details_pb2.ErrorInfo,
    "google.rpc.BadRequest": error_details_pb2.BadRequest,
    "google.rpc.ResourceInfo": error_details_pb2.ResourceInfo,
    "google.rpc.RetryInfo": error_details_pb2.RetryInfo,
}


def _pack(message: Message) -> any_pb2.Any:
    """Pack a detail into an ``Any`` (an ``Any`` is kept as it is)."""
    if isinstance(message, any_pb2.Any):
        return message
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _unpack_any(packed: any_pb2.Any) -> Message:
    """Unpack an ``Any`` whose type this process knows; otherwise keep the ``Any``."""
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(packed.TypeName())
    except KeyError:
        return packed
    message = message_factory.GetMessageClass(descriptor)()
    packed.Unpack(message)
    return message
