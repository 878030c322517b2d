"""README.md's "Try it with grpcurl" walkthrough, run as written.

The ```sh blocks between ``<!-- walkthrough:start -->`` and
``<!-- walkthrough:end -->`` are extracted from README.md (so the text cannot
drift from what works) and run in order, each with bash, against a fresh
platform started as ``make run`` starts it, with ``.tools/bin`` first on PATH.
The one substitution: the ports 50051/50052/50053 (``make run``'s defaults)
become the free ports the test platform listens on.

A ```json or ```text block right after a ```sh block is what that command
prints (stdout and stderr as a terminal shows them); the test compares it with
what the command really printed, ignoring only values that differ from run to
run (times, etags, revisions, generated ids, request and trace ids), so the
README cannot show output that grpcurl does not print.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness import REPO, Platform, Ports, running_platform

pytestmark = pytest.mark.e2e

README = REPO / "README.md"
START, END = "<!-- walkthrough:start -->", "<!-- walkthrough:end -->"
# The authenticated steps, run against `make run AUTH=1` with the banner's TOKEN exported.
AUTH_START, AUTH_END = "<!-- walkthrough-auth:start -->", "<!-- walkthrough-auth:end -->"
# The mutual-TLS steps, run against `make run TLS=1` (its PKI lives in DATA_DIR/tls).
TLS_START, TLS_END = "<!-- walkthrough-tls:start -->", "<!-- walkthrough-tls:end -->"
README_PORTS = {"50051": "registry", "50052": "user", "50053": "product"}
COMMAND_TIMEOUT_S = 20.0


# Values that differ from run to run, as grpcurl prints them: "key": "value".
_VOLATILE_KEYS = (
    "create_time|update_time|delete_time|expire_time|register_time|renew_time|event_time"
    "|etag|revision|request_id|trace_id"
)
_VOLATILE = [
    (re.compile(rf'"({_VOLATILE_KEYS})": "[^"]*"'), r'"\1": "…"'),
    (re.compile(r'"id": "[0-9a-f]{32}"'), '"id": "…"'),  # ids the server generates
    (re.compile(r"request id [0-9a-f-]+"), "request id …"),
    # A stream cut by -max-time: grpcurl's own deadline or the server's, whichever is first.
    (re.compile(r"Message: (context deadline exceeded|Deadline Exceeded)"), "Message: …"),
]


@dataclass(frozen=True)
class Block:
    """One ```sh block of the walkthrough and the output the README shows for it, if any."""

    command: str
    shown: str | None


@dataclass(frozen=True)
class Step:
    """One ```sh block as written in the README and what running it printed."""

    command: str
    returncode: int
    output: str  # stdout and stderr, interleaved as a terminal shows them
    shown: str | None = None


def walkthrough_blocks(readme: str, start: str = START, end: str = END) -> list[Block]:
    """The ```sh blocks between the walkthrough markers, in order, with their shown output."""
    assert readme.count(start) == 1 and readme.count(end) == 1, "walkthrough markers"
    section = readme[readme.index(start) : readme.index(end)]
    fence = re.compile(r"^```(\w*)\n(.*?)^```$\n?", re.MULTILINE | re.DOTALL)
    fences = list(fence.finditer(section))
    blocks = []
    for here, after in zip(fences, [*fences[1:], None], strict=True):
        if here[1] != "sh":
            continue
        follows = after is not None and not section[here.end() : after.start()].strip()
        shown = after[2] if follows and after is not None and after[1] in {"json", "text"} else None
        blocks.append(Block(here[2], shown))
    return blocks


def normalized(text: str) -> str:
    """``text`` with the run-to-run values blanked, trailing space and blank ends dropped."""
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def with_ports(command: str, ports: Ports) -> str:
    """The command with make run's ports replaced by the test platform's (nothing else)."""
    return re.sub(r"\b(5005[123])\b", lambda m: str(getattr(ports, README_PORTS[m[1]])), command)


def run_block(block: Block, ports: Ports, env: dict[str, str], cwd: Path) -> Step:
    result = subprocess.run(
        ["bash", "-c", with_ports(block.command, ports)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    return Step(block.command, result.returncode, result.stdout, block.shown)


def json_values(text: str) -> list[Any]:
    """Every JSON value in ``text`` (grpcurl prints one per streamed message)."""
    decoder, values, pos = json.JSONDecoder(), [], 0
    text = text.strip()
    while pos < len(text):
        value, pos = decoder.raw_decode(text, pos)
        values.append(value)
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return values


class Steps:
    """The steps' results, looked up by what their command calls."""

    def __init__(self, steps: list[Step], platform: Platform) -> None:
        self.steps = steps
        self.platform = platform

    def all(self, needle: str) -> list[Step]:
        found = [s for s in self.steps if needle in s.command]
        assert found, f"the walkthrough has no step with {needle!r}"
        return found

    def one(self, needle: str) -> Step:
        return self.all(needle)[0]

    def json(self, needle: str) -> Any:
        return json.loads(self.one(needle).output)


@pytest.fixture(scope="module")
def blocks() -> list[Block]:
    return walkthrough_blocks(README.read_text())


@pytest.fixture(scope="module")
def steps(
    blocks: list[Block], tools_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Steps]:
    """Run every block in order against a fresh platform (plus the README's retry)."""
    workdir = tmp_path_factory.mktemp("walkthrough")
    with running_platform(workdir) as platform:
        done = [run_block(b, platform.ports, tools_env, workdir) for b in blocks]
        # The README invites running ReserveStock again: the answer must not change.
        retries = [b for b in blocks if "/ReserveStock" in b.command]
        done += [run_block(b, platform.ports, tools_env, workdir) for b in retries]
        yield Steps(done, platform)


def test_the_walkthrough_is_grpcurl_commands_on_make_runs_ports(blocks: list[Block]) -> None:
    assert len(blocks) >= 6
    for block in blocks:
        assert block.command.startswith("grpcurl "), block
        ports = set(re.findall(r"localhost:(\d+)", block.command))
        assert ports and ports <= set(README_PORTS), block


def test_every_output_the_readme_shows_is_what_grpcurl_prints(steps: Steps) -> None:
    shown = [step for step in steps.steps if step.shown is not None]
    assert len(shown) >= 6, "the walkthrough shows the output of most steps"
    for step in shown:
        assert step.shown is not None
        assert normalized(step.output) == normalized(step.shown), step.command


def test_the_output_check_sees_a_difference() -> None:
    """The comparison is real: it ignores times and etags, not what a call returned."""
    real = '{\n  "user": {\n    "id": "ada",\n    "etag": "04f5"\n  }\n}\n'
    assert normalized(real) == normalized(real.replace("04f5", "99aa"))
    assert normalized(real) != normalized(real.replace('"ada"', '"bob"'))
    assert normalized(real) != normalized(real.replace("\n  ", " "))  # compact is not pretty


def test_every_step_exits_zero(steps: Steps) -> None:
    for step in steps.steps:
        assert step.returncode == 0, step


def test_the_registry_lists_user_and_product(steps: Steps) -> None:
    services = steps.json("RegistryService/ListServices")["services"]
    assert {s["name"]: s["instance_count"] for s in services} == {"product": 1, "user": 1}


def test_list_and_describe_work_from_reflection(steps: Steps) -> None:
    assert "switchboard.user.v1.UserService" in steps.one(" list").output.split()
    assert "user_id" in steps.one(" describe ").output


def test_ada_is_created_with_the_id_she_asked_for(steps: Steps) -> None:
    creates = [s for s in steps.all("UserService/CreateUser") if '"ada"' in s.command]
    user = json.loads(creates[0].output)["user"]
    assert (user["id"], user["email"], user["display_name"]) == (
        "ada",
        "ada@example.com",
        "Ada Lovelace",
    )


def test_a_bad_email_shows_the_field_violation_and_exit_status(steps: Steps) -> None:
    bad = steps.one("not-an-email")
    assert "google.rpc.BadRequest" in bad.output and '"field": "user.email"' in bad.output
    assert bad.output.rstrip().endswith("grpcurl exit status 67")


def test_the_lamp_is_created_for_seller_ada(steps: Steps) -> None:
    product = steps.json("ProductService/CreateProduct")["product"]
    assert product["id"] == "lamp" and product["seller_id"] == "ada"
    assert product["stock"] == "10"
    assert product["price"] == {"currency_code": "EUR", "amount_minor": "1999"}


def test_reserving_takes_two_and_a_retry_returns_the_same_reservation(steps: Steps) -> None:
    first, again = (json.loads(s.output) for s in steps.all("ProductService/ReserveStock"))
    reservation = first["reservation"]
    assert reservation["product_id"] == "lamp" and reservation["quantity"] == "2"
    assert reservation["state"] == "RESERVATION_STATE_ACTIVE"
    assert first["product"]["stock"] == "8"
    assert again["reservation"]["id"] == reservation["id"]
    assert again["product"]["stock"] == "8"


def test_the_watch_prints_the_events_then_ends_by_itself(steps: Steps) -> None:
    watch = steps.one("ProductService/WatchProducts")
    stream, _, error = watch.output.partition("ERROR:")
    assert error.rstrip().endswith("grpcurl exit status 68"), watch
    events = [value["event"] for value in json_values(stream)]
    kinds = [(e["type"], e["product"]["id"]) for e in events]
    assert kinds[:2] == [
        ("PRODUCT_EVENT_TYPE_CREATED", "lamp"),
        ("PRODUCT_EVENT_TYPE_STOCK_RESERVED", "lamp"),
    ]
    assert "Code: DeadlineExceeded" in error  # -max-time ended the stream


def test_health_is_serving(steps: Steps) -> None:
    assert steps.json("Health/Check") == {"status": "SERVING"}


def test_no_service_printed_a_traceback(steps: Steps) -> None:
    assert "Traceback" not in steps.platform.output()


@pytest.fixture(scope="module")
def auth_steps(tools_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> list[Step]:
    """The authenticated blocks, in order, against `make run AUTH=1` with its TOKEN."""
    blocks = walkthrough_blocks(README.read_text(), AUTH_START, AUTH_END)
    workdir = tmp_path_factory.mktemp("walkthrough-auth")
    with running_platform(workdir, env={"AUTH": "1"}) as platform:
        token = re.search(r"^export TOKEN=(\S+)$", platform.output(), re.MULTILINE)
        assert token, platform.output()
        env = {**tools_env, "TOKEN": token[1]}
        return [run_block(b, platform.ports, env, workdir) for b in blocks]


def test_without_the_token_a_call_is_unauthenticated(auth_steps: list[Step]) -> None:
    anonymous = auth_steps[0]
    assert "-H" not in anonymous.command
    assert "Code: Unauthenticated" in anonymous.output and "TOKEN_MISSING" in anonymous.output
    assert anonymous.output.rstrip().endswith("grpcurl exit status 80")  # 64 + 16


def test_with_the_banners_token_the_call_goes_through(auth_steps: list[Step]) -> None:
    authenticated = auth_steps[1]
    assert '"authorization: Bearer $TOKEN"' in authenticated.command
    assert authenticated.returncode == 0, authenticated.output
    assert json.loads(authenticated.output)["user"]["id"] == "ada"


@pytest.fixture(scope="module")
def tls_steps(tools_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> list[Step]:
    """The mutual-TLS blocks, in order, against `make run TLS=1` (var/ -> its data dir)."""
    blocks = walkthrough_blocks(README.read_text(), TLS_START, TLS_END)
    workdir = tmp_path_factory.mktemp("walkthrough-tls")
    with running_platform(workdir, env={"TLS": "1"}) as platform:
        assert "mutual TLS is on" in platform.output(), platform.output()
        data = str(platform.data_dir)
        moved = [Block(b.command.replace("var/tls/", f"{data}/tls/"), b.shown) for b in blocks]
        return [run_block(b, platform.ports, tools_env, workdir) for b in moved]


def test_over_mtls_a_certificate_from_the_ca_gets_through(tls_steps: list[Step]) -> None:
    health, create_user, create_product, *_ = tls_steps
    for step in (health, create_user, create_product):
        assert step.returncode == 0, step
    assert normalized(health.output) == normalized(health.shown or "")
    product = json.loads(create_product.output)["product"]
    # The seller was known through mTLS: WatchUsers fed the projection, or GetUser on a miss.
    assert product["seller_id"] == "grace"


def test_over_mtls_no_certificate_and_plaintext_are_refused(tls_steps: list[Step]) -> None:
    no_certificate, plaintext = tls_steps[-2:]
    assert "-cert" not in no_certificate.command and "-plaintext" in plaintext.command
    for step in (no_certificate, plaintext):
        assert "Failed to dial target host" in step.output, step
        assert step.output.rstrip().endswith("grpcurl exit status 1"), step
