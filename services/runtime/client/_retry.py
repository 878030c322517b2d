"""Which calls may be retried, and the retry loop that runs only after a first failure.

Retry behaviour is declared per method in the contracts themselves, not in
this runtime: protobuf's standard method option ``idempotency_level`` says
``NO_SIDE_EFFECTS`` (a *read*, safe to repeat) or ``IDEMPOTENT`` (an
*idempotent write*: repeating it has the same effect, e.g. Register replaces
by instance id); a unary method whose request has a ``request_id`` field is a
*keyed write* (repeated safely only under that idempotency key, which the
client fills in when the caller gave none); streams and everything else are
*not retried*. :func:`retry_table` computes the table for a service from its
descriptor, so a service this runtime has never heard of gets the right
policy. gRPC's own retryPolicy stays off: this module is the only place that
retries.

Retryable statuses:

==================  ====  ===========  ================
code                read  keyed write  idempotent write
==================  ====  ===========  ================
UNAVAILABLE         yes   yes          yes
CANCELLED           yes#  yes#         yes#
DEADLINE_EXCEEDED   yes*  no           no
RESOURCE_EXHAUSTED  yes+  yes+         yes+
anything else       no    no           no
==================  ====  ===========  ================

``*`` only when one attempt timed out and the caller's deadline has time left;
``+`` only when the server sent ``google.rpc.RetryInfo`` (then its delay is a
floor for the backoff); ``#`` a CANCELLED status can only come from the other
side (a server that stops cancels its in-flight calls): grpc.aio reports the
caller's own cancellation as ``asyncio.CancelledError``, which is never retried.

The common path never builds a tenacity object: the client makes the first
attempt itself and calls :func:`retry_after_failure` only when that attempt
failed with a retryable status. Example::

    spec = MethodSpec.of("/helloworld.Greeter/SayHello")
    spec.policy is READ          # True
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped, unused-ignore]
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from services.runtime import errors

__all__ = [
    "IDEMPOTENT_WRITE",
    "KEYED_WRITE",
    "NO_RETRY",
    "READ",
    "IDEMPOTENCY_KEY_FIELD",
    "MethodSpec",
    "RetryPolicy",
    "RetrySettings",
    "describe",
    "full_jitter",
    "is_retryable",
    "map_error",
    "policy_for",
    "policy_of",
    "retry_after_failure",
    "retry_table",
]

log = logging.getLogger("services.runtime.client")

ReqT = TypeVar("ReqT", bound=Message)
RespT = TypeVar("RespT", bound=Message)
T = TypeVar("T")

_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
_CANCELLED = grpc.StatusCode.CANCELLED
_DEADLINE = grpc.StatusCode.DEADLINE_EXCEEDED
_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
_DETAILS_KEY = "grpc-status-details-bin"
_RETRY_INFO = "google.rpc.RetryInfo"
# An attempt that ended with this much of the caller's deadline left timed out
# on its own per-attempt timeout, not on the caller's deadline.
_DEADLINE_SLACK_S = 0.002


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Which failures of a method may be retried.

    Example: ``grpc.StatusCode.DEADLINE_EXCEEDED in READ.codes`` is True.
    """

    name: str
    codes: frozenset[grpc.StatusCode]
    needs_idempotency_key: bool = False


READ = RetryPolicy("read", frozenset({_UNAVAILABLE, _CANCELLED, _DEADLINE, _EXHAUSTED}))
KEYED_WRITE = RetryPolicy("keyed_write", frozenset({_UNAVAILABLE, _CANCELLED, _EXHAUSTED}), True)
IDEMPOTENT_WRITE = RetryPolicy(
    "idempotent_write", frozenset({_UNAVAILABLE, _CANCELLED, _EXHAUSTED})
)
NO_RETRY = RetryPolicy("no_retry", frozenset())

IDEMPOTENCY_KEY_FIELD = "request_id"
"""The request field that makes a write safe to retry: the server applies one key once.

Not to be confused with the ``x-request-id`` header, which traces a call
(see :mod:`services.runtime.context`) and is new for every call."""


# Contracts this runtime speaks but did not write, so they carry no idempotency option.
_UNANNOTATED: Mapping[str, RetryPolicy] = {"/grpc.health.v1.Health/Check": READ}
_LEVELS = descriptor_pb2.MethodOptions.IdempotencyLevel


def policy_of(method: MethodDescriptor) -> RetryPolicy:
    """The retry policy a contract declares for one method.

    Streams are never retried (the caller resumes from its last revision);
    ``idempotency_level = NO_SIDE_EFFECTS`` makes a read, ``IDEMPOTENT`` an
    idempotent write; a unary method whose request has a ``request_id`` field
    is a keyed write (retried under one idempotency key); anything else is not
    retried.

    Example: ``policy_of(Greeter.methods_by_name["SayHello"]) is READ``.
    """
    if method.client_streaming or method.server_streaming:
        return NO_RETRY
    level = method.GetOptions().idempotency_level
    if level == _LEVELS.NO_SIDE_EFFECTS:
        return READ
    if level == _LEVELS.IDEMPOTENT:
        return IDEMPOTENT_WRITE
    if IDEMPOTENCY_KEY_FIELD in method.input_type.fields_by_name:
        return KEYED_WRITE
    return NO_RETRY


def retry_table(service: ServiceDescriptor) -> dict[str, RetryPolicy]:
    """Every method of ``service`` with its policy: the retry table, computed from the contract.

    Example: ``retry_table(greeter)["/helloworld.Greeter/SayHello"] is READ``.
    """
    table = {f"/{service.full_name}/{m.name}": policy_of(m) for m in service.methods}
    return {path: _UNANNOTATED.get(path, policy) for path, policy in table.items()}


@functools.cache
def policy_for(method: str) -> RetryPolicy:
    """The retry policy of a full method name, from the loaded contracts (cached).

    ``NO_RETRY`` for a method no loaded contract defines.
    Example: ``policy_for("/helloworld.Greeter/SayHello") is READ``.
    """
    service_name, _, method_name = method.lstrip("/").partition("/")
    try:
        service = descriptor_pool.Default().FindServiceByName(service_name)
    except KeyError:
        return NO_RETRY
    return retry_table(service).get(method, NO_RETRY)


@dataclass(frozen=True, slots=True)
class MethodSpec(Generic[ReqT, RespT]):
    """Everything about one method that the client computes once, not per call.

    Example::

        GET_USER = MethodSpec.of("/helloworld.Greeter/SayHello")
        GET_USER.response_type        # GetUserResponse
    """

    path: str
    request_type: type[ReqT]
    response_type: type[RespT]
    policy: RetryPolicy
    server_streaming: bool = False
    auto_idempotency_key: bool = False  # fill request_id in when the caller left it empty

    @staticmethod
    def of(path: str) -> MethodSpec[Any, Any]:
        """The spec of a full method name, looked up in the protobuf descriptor pool (cached).

        Raises ``KeyError`` when no loaded module defines the method.
        """
        return _spec_of(path)

    def with_policy(self, policy: RetryPolicy) -> MethodSpec[ReqT, RespT]:
        """A copy with another retry policy (e.g. ``NO_RETRY`` for a caller with its own loop)."""
        policy = _effective(policy, self.request_type)
        return replace(self, policy=policy, auto_idempotency_key=policy.needs_idempotency_key)


def _effective(policy: RetryPolicy, request_type: type[Message]) -> RetryPolicy:
    """A keyed write whose request has no ``request_id`` field cannot be retried safely."""
    if (
        policy.needs_idempotency_key
        and IDEMPOTENCY_KEY_FIELD not in request_type.DESCRIPTOR.fields_by_name
    ):
        return NO_RETRY
    return policy


@functools.cache
def _spec_of(path: str) -> MethodSpec[Any, Any]:
    service_name, _, method_name = path.lstrip("/").partition("/")
    pool = descriptor_pool.Default()
    method = pool.FindServiceByName(service_name).FindMethodByName(method_name)
    request_type = message_factory.GetMessageClass(method.input_type)
    policy = _effective(policy_for(path), request_type)
    return MethodSpec(
        path=path,
        request_type=request_type,
        response_type=message_factory.GetMessageClass(method.output_type),
        policy=policy,
        server_streaming=method.server_streaming,
        auto_idempotency_key=policy.needs_idempotency_key,
    )


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """How many attempts and how long to back off between them.

    Example: ``RetrySettings(max_attempts=3, initial_backoff_s=0.02)``.
    """

    max_attempts: int = 4
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 1.0
    jitter_s: float = 0.05
    per_attempt_timeout_s: float | None = None  # None: an attempt may use the whole deadline


def is_retryable(err: grpc.aio.AioRpcError, spec: MethodSpec[Any, Any], deadline: float) -> bool:
    """Whether ``err`` (one failed attempt of ``spec``) may be tried again before ``deadline``."""
    code = err.code()
    if code not in spec.policy.codes:
        return False
    if code is _DEADLINE:
        return deadline - time.monotonic() > _DEADLINE_SLACK_S
    if code is _EXHAUSTED:
        return retry_info_delay(err) is not None
    return True


def retry_info_delay(err: grpc.aio.AioRpcError) -> float | None:
    """The ``google.rpc.RetryInfo`` delay the server sent with ``err``, in seconds, or None."""
    for key, value in err.trailing_metadata() or ():
        if key != _DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for packed in status.details:
            if packed.TypeName() == _RETRY_INFO:
                info = error_details_pb2.RetryInfo()
                packed.Unpack(info)
                return float(info.retry_delay.ToNanoseconds()) / 1e9
    return None


def describe(err: BaseException) -> str:
    """A one-line cause for the log: ``UNAVAILABLE: connection refused``."""
    if isinstance(err, grpc.aio.AioRpcError):
        return f"{err.code().name}: {err.details()}"
    return repr(err)


def map_error(err: grpc.aio.AioRpcError, deadline: float, attempts: int) -> errors.SwitchboardError:
    """The typed error for the last failure; a spent caller deadline is always DeadlineExceeded."""
    if err.code() is not _DEADLINE and time.monotonic() < deadline:
        return errors.from_rpc_error(err)
    return errors.DeadlineExceeded(
        f"deadline exceeded after {attempts} attempt(s); last error {describe(err)}"
    )


async def retry_after_failure(
    first_error: grpc.aio.AioRpcError,
    attempt: Callable[[float], Awaitable[T]],
    spec: MethodSpec[Any, Any],
    deadline: float,
    settings: RetrySettings,
) -> T:
    """Retry a call whose first attempt failed with ``first_error``, within ``deadline``.

    ``attempt(timeout)`` makes one attempt. Tenacity counts ``first_error`` as
    attempt 1, so ``max_attempts`` bounds the whole call; each attempt's timeout
    is ``min(per_attempt, remaining)`` and a backoff never sleeps past half of
    the time left, so a retry never extends the caller's deadline.
    """
    pending: list[grpc.aio.AioRpcError] = [first_error]
    count = 0

    async def one_attempt() -> T:
        nonlocal count
        count += 1
        if pending:
            raise pending.pop()
        result = await attempt(_attempt_timeout(deadline, settings))
        log.debug("%s attempt %d succeeded", spec.path, count)
        return result

    try:
        return await _retrying(spec, deadline, settings)(one_attempt)
    except grpc.aio.AioRpcError as err:
        log.debug("%s attempt %d failed (%s); giving up", spec.path, count, describe(err))
        raise map_error(err, deadline, count) from err


def _attempt_timeout(deadline: float, settings: RetrySettings) -> float:
    remaining = deadline - time.monotonic()
    per_attempt = settings.per_attempt_timeout_s
    return remaining if per_attempt is None else min(per_attempt, remaining)


def _retrying(
    spec: MethodSpec[Any, Any], deadline: float, settings: RetrySettings
) -> AsyncRetrying:
    backoff = wait_exponential_jitter(
        multiplier=settings.initial_backoff_s, max=settings.max_backoff_s, jitter=settings.jitter_s
    )

    def wait(state: RetryCallState) -> float:
        delay = backoff(state)
        hint = _hint(state)
        if hint is not None:
            delay = max(delay, hint)
        # Leave at least half of what is left for the next attempt.
        return max(0.0, min(delay, (deadline - time.monotonic()) / 2))

    def retryable(err: BaseException) -> bool:
        return isinstance(err, grpc.aio.AioRpcError) and is_retryable(err, spec, deadline)

    return AsyncRetrying(
        stop=stop_after_attempt(settings.max_attempts)
        | stop_before_delay(max(0.0, deadline - time.monotonic())),
        wait=wait,
        retry=retry_if_exception(retryable),
        before_sleep=functools.partial(_log_sleep, spec.path),
        reraise=True,
    )


def _hint(state: RetryCallState) -> float | None:
    outcome = state.outcome
    err = outcome.exception() if outcome is not None else None
    return retry_info_delay(err) if isinstance(err, grpc.aio.AioRpcError) else None


def _log_sleep(path: str, state: RetryCallState) -> None:
    outcome = state.outcome
    err = outcome.exception() if outcome is not None else None
    cause = describe(err) if err is not None else "?"
    sleep = state.upcoming_sleep
    log.debug(
        "%s attempt %d failed (%s); retrying in %.3f s", path, state.attempt_number, cause, sleep
    )


def full_jitter(attempt: int, base_s: float, cap_s: float) -> float:
    """A "full jitter" backoff: uniform in [0, min(cap, base * 2**attempt)].

    Example: ``0 <= full_jitter(3, 0.1, 5.0) <= 0.8``.
    """
    return random.uniform(0.0, min(cap_s, base_s * 2.0 ** max(0, attempt)))
