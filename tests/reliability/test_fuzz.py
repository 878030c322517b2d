"""Property-based fuzzing of every RPC of every service, from the request descriptors.

For each RPC, Hypothesis draws requests from a strategy that walks the
request's message descriptor (see ``_support/strategies.py``), seeded with
values the services know (existing ids, emails, SKUs, leases...). Properties:

1. The answer is OK, or INVALID_ARGUMENT / NOT_FOUND / ALREADY_EXISTS /
   FAILED_PRECONDITION, or a code the RPC's contract comment in ``protos/``
   names - never UNKNOWN, INTERNAL or anything else.
2. A request that fails changes nothing: every row of both databases and
   every registry entry (and the revisions) are the same before and after.
3. No answer's details carry a Python exception name or a traceback.

Bounded for CI: ``max_examples`` per RPC (streams get fewer: an open stream
costs its wait), derandomized (the same examples every run), no deadline.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability._support.contracts import Rpc, all_rpcs, call_raw
from tests.reliability._support.strategies import messages, mutants
from tests.reliability._support.world import World

ALWAYS_ALLOWED = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
    }
)
INTERNALS = re.compile(r"Traceback|Exception|Error\(|\.py\b|File \"")
UNARY_EXAMPLES = 100
STREAM_EXAMPLES = 30
FUZZ = settings(
    max_examples=UNARY_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with await World.open(tmp_path) as opened:
        yield opened


def requests(world: World, rpc: Rpc) -> st.SearchStrategy[Message]:
    """Half anything the descriptor allows, half a valid request with a field or two redrawn."""
    anything = messages(rpc.request_descriptor, world.pool)
    template = world.templates.get(rpc.path, rpc.request_type())
    return anything | mutants(template, world.pool)


def allowed(rpc: Rpc) -> frozenset[grpc.StatusCode]:
    return ALWAYS_ALLOWED | rpc.contract_codes


async def check_one(world: World, rpc: Rpc, request_bytes: bytes) -> None:
    before = await world.state()
    code, details = await call_raw(world.channels[rpc.service_key], rpc, request_bytes, open_s=0.1)
    assert code in allowed(rpc), f"{rpc} answered {code.name}: {details}"
    assert not INTERNALS.search(details), f"{rpc} leaked internals: {details}"
    if code is not grpc.StatusCode.OK:
        assert await world.state() == before, f"{rpc} failed with {code.name} but changed state"


@pytest.mark.parametrize("rpc", [r for r in all_rpcs() if not r.server_streaming], ids=str)
@FUZZ
@given(data=st.data())
async def test_unary_rpc_answers_per_contract_and_failures_change_nothing(
    world: World, rpc: Rpc, data: st.DataObject
) -> None:
    request = data.draw(requests(world, rpc), label="request")
    await check_one(world, rpc, request.SerializeToString())


@pytest.mark.parametrize("rpc", [r for r in all_rpcs() if r.server_streaming], ids=str)
@settings(FUZZ, max_examples=STREAM_EXAMPLES)
@given(data=st.data())
async def test_streaming_rpc_answers_per_contract_and_failures_change_nothing(
    world: World, rpc: Rpc, data: st.DataObject
) -> None:
    request = data.draw(requests(world, rpc), label="request")
    await check_one(world, rpc, request.SerializeToString())
