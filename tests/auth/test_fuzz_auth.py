"""The descriptor-walking fuzz once more, with auth on and random metadata.

Every example draws an RPC of any service, a request (anything its descriptor
allows, or a valid one with a field or two redrawn) and metadata: a forged or
random ``authorization`` (or none), sometimes a valid token with random
scopes and roles, a random ``x-switchboard-caller`` and random other headers.
Properties:

1. never UNKNOWN or INTERNAL, never a traceback in the details;
2. without valid credentials the answer is UNAUTHENTICATED - never an allowed call -
   and nothing changes (whatever ``x-switchboard-caller`` says);
3. PERMISSION_DENIED changes nothing either.
"""

from __future__ import annotations

import re
import string
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.auth._support import ALL_SCOPES, Keys, bearer
from tests.reliability._support.contracts import all_rpcs, call_raw
from tests.reliability._support.strategies import messages, mutants
from tests.reliability._support.world import World

EXAMPLES = 120
# A refused stream ends at once; one still open after this long was let in (a busy
# machine may take a while to answer, so this is generous - it costs nothing when right).
REFUSAL_S = 3.0
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
INTERNALS = re.compile(r"Traceback|Exception|Error\(|\.py\b|File \"")
NEVER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
PRINTABLE = string.ascii_letters + string.digits + string.punctuation + " "
HEADER_NAME = st.text(string.ascii_lowercase + string.digits + "-_.", min_size=1, max_size=12)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys.create(tmp_path / "keys")


@pytest.fixture
async def world(tmp_path: Path, keys: Keys) -> AsyncIterator[World]:
    config = keys.server_config()
    async with await World.open(tmp_path / "data", config=config, token=keys.admin()) as opened:
        yield opened


def credentials(keys: Keys) -> st.SearchStrategy[tuple[tuple[tuple[str, str], ...], bool]]:
    """(authorization metadata, whether it is valid)."""
    forged = [token for token in keys.forged().values() if token is not None]
    bad = st.one_of(
        st.just(()),
        st.sampled_from(forged).map(bearer),
        st.text(PRINTABLE, max_size=80).map(lambda t: (("authorization", t),)),
        st.text(PRINTABLE, max_size=80).map(bearer),
        st.sampled_from(forged).map(lambda t: (("authorization", f"Basic {t}"),)),
    )
    scopes = st.lists(st.sampled_from(ALL_SCOPES), unique=True)
    roles = st.lists(st.sampled_from(["admin", "viewer"]), unique=True)
    valid = st.builds(
        lambda s, r, alg: bearer(keys.token(alg, scopes=s, roles=r)),
        scopes,
        roles,
        st.sampled_from(["HS256", "RS256", "ES256"]),
    )
    return st.one_of(bad.map(lambda md: (md, False)), valid.map(lambda md: (md, True)))


def others() -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    header = st.tuples(
        HEADER_NAME.filter(lambda n: not n.startswith("grpc-") and n != "authorization"),
        st.text(PRINTABLE.strip(), max_size=40),
    )
    caller = st.text(PRINTABLE, max_size=40).map(lambda v: ("x-switchboard-caller", v))
    return st.lists(st.one_of(header, caller), max_size=3).map(tuple)


@FUZZ
@given(data=st.data())
async def test_with_auth_on_no_call_gets_in_without_credentials(
    world: World, keys: Keys, data: st.DataObject
) -> None:
    rpc = data.draw(st.sampled_from(all_rpcs()), label="rpc")
    template = world.templates.get(rpc.path, rpc.request_type())
    pool = world.pool
    request = data.draw(messages(rpc.request_descriptor, pool) | mutants(template, pool))
    auth, valid = data.draw(credentials(keys), label="credentials")
    metadata = (*auth, *data.draw(others(), label="other metadata"))
    before = await world.state()
    code, details = await call_raw(
        world.channels[rpc.service_key], rpc, request.SerializeToString(), metadata=metadata,
        open_s=0.1 if valid else REFUSAL_S,
    )  # fmt: skip
    assert code not in NEVER, f"{rpc} answered {code.name}: {details}"
    assert not INTERNALS.search(details), f"{rpc} leaked internals: {details}"
    if not valid:
        assert code == grpc.StatusCode.UNAUTHENTICATED, f"{rpc} let in {auth}: {code.name}"
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        assert await world.state() == before, f"{rpc} refused with {code.name} but changed state"
