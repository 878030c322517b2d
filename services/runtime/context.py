"""Per-call context: the request id and the incoming call's deadline, as contextvars.

The request-id interceptor fills these for every call a server handles; code
inside the handler (and outgoing client calls it makes) reads them.

Example::

    async def SayHello(self, request, context):
        log.info("get %s (request %s)", request.name, current_request_id())
        timeout = remaining_time()          # None when the caller set no deadline
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = [
    "REQUEST_ID_KEY",
    "bind_call",
    "current_deadline",
    "current_request_id",
    "new_request_id",
    "remaining_time",
    "request_scope",
]

REQUEST_ID_KEY = "x-request-id"
"""The metadata key that carries the request id in both directions."""

_request_id: ContextVar[str | None] = ContextVar("switchboard_request_id", default=None)
_deadline: ContextVar[float | None] = ContextVar("switchboard_deadline", default=None)


def new_request_id() -> str:
    """A fresh random request id (32 hex characters).

    Example: ``len(new_request_id()) == 32``.
    """
    return os.urandom(16).hex()  # uuid4's randomness without building a UUID (~4 µs -> ~1)


def current_request_id() -> str | None:
    """The id of the call being handled, or None outside a call."""
    return _request_id.get()


def current_deadline() -> float | None:
    """The incoming call's absolute deadline on the ``time.monotonic()`` clock, or None."""
    return _deadline.get()


def remaining_time() -> float | None:
    """Seconds left before the incoming call's deadline (never negative), or None.

    Example: ``stub.GetUser(request, timeout=remaining_time())``.
    """
    deadline = _deadline.get()
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


def bind_call(request_id: str, timeout: float | None) -> None:
    """Set the request id and deadline for the rest of the current context.

    The server calls this once per call without resetting: grpc.aio runs each
    call in its own task with its own copy of the context, so nothing leaks
    into other calls, and a streaming handler's async generator may be closed
    from another context where a reset would fail.
    """
    _request_id.set(request_id)
    _deadline.set(None if timeout is None else time.monotonic() + timeout)


@contextmanager
def request_scope(request_id: str | None = None, timeout: float | None = None) -> Iterator[str]:
    """Run a block as if it handled a call: for background work and tests.

    Example::

        with request_scope(timeout=2.0) as request_id:
            await client.call(...)       # carries request_id and ~2 s deadline
    """
    rid = request_id or new_request_id()
    rid_token = _request_id.set(rid)
    deadline_token = _deadline.set(None if timeout is None else time.monotonic() + timeout)
    try:
        yield rid
    finally:
        _deadline.reset(deadline_token)
        _request_id.reset(rid_token)
