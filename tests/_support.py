"""Helpers every test package shares."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc.aio

from services.runtime import SwitchboardError, from_rpc_error


async def failure(call: Awaitable[Any]) -> SwitchboardError:
    """The typed error a call fails with (AssertionError if it succeeds).

    Example: ``assert isinstance(await failure(stub.GetUser(request)), NotFound)``.
    """
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return from_rpc_error(err)
    raise AssertionError("the call succeeded")
