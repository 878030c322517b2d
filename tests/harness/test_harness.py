"""The harness itself: it reads every form of the listening line, starts, signals, stops
and reaps processes from sync and async code, and serves in-process."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import grpc.aio
import pytest

from harness import HarnessError, Launcher, Listening, parse_listening, serving, serving_plain
from harness.fakes import FakeUsers, users_service
from services.runtime import ListeningHook, ServerConfig
from switchboard.user.v1 import user_service_pb2, user_service_pb2_grpc
from tests.runtime._certs import make_pki

# A program that says it listens and then ignores SIGTERM: only SIGKILL stops it.
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('stubborn listening on 127.0.0.1:1', flush=True); time.sleep(60)"
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("user listening on 127.0.0.1:41234", Listening("user", "127.0.0.1", 41234)),
        (
            "2026-12-02 INFO switchboard.user user listening on 127.0.0.1:5 (http 127.0.0.1:6)",
            Listening("user", "127.0.0.1", 5, http="127.0.0.1:6"),
        ),
        (
            "registry listening on [::1]:5 (http [::1]:6), console http://[::1]:6/",
            Listening("registry", "[::1]", 5, http="[::1]:6", console="http://[::1]:6/"),
        ),
        ("user listening on 127.0.0.1:5 with TLS", Listening("user", "127.0.0.1", 5, tls="tls")),
        (
            "user listening on 127.0.0.1:5 with mutual TLS (clients need a certificate ...)",
            Listening("user", "127.0.0.1", 5, tls="mtls"),
        ),
        (
            '{"level": "INFO", "message": "echo-aio listening on 127.0.0.1:7"}',
            Listening("echo-aio", "127.0.0.1", 7),
        ),
        ("listening on 127.0.0.1:8", Listening("", "127.0.0.1", 8)),
        ("starting up\nnothing bound yet", None),
    ],
)
def test_every_form_of_the_listening_line_is_read(line: str, expected: Listening | None) -> None:
    assert parse_listening(line) == expected


@pytest.mark.parametrize("tls", ["off", "tls", "mtls"])
async def test_what_listening_hook_prints_is_what_the_parser_reads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, tls: str
) -> None:
    ca, server, _client = make_pki(tmp_path)
    files: dict[str, Path] = {}
    if tls != "off":
        files = {"tls_cert": server.cert, "tls_key": server.key}
    if tls == "mtls":
        files["tls_client_ca"] = ca.cert
    hook = ListeningHook("greeter", ServerConfig(listen="[::1]:0", **files))  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="switchboard.greeter"):
        await hook.started(41234)
    assert parse_listening(caplog.records[0].getMessage()) == Listening(
        "greeter", "[::1]", 41234, tls={"off": "none"}.get(tls, tls)
    )


async def test_a_server_is_started_killed_restarted_on_its_port_and_stopped(
    launcher: Launcher,
) -> None:
    registry = await launcher.start("registry", "--http-listen", "127.0.0.1:0")
    listening = registry.listening
    assert listening is not None and listening.name == "registry"
    assert registry.address == f"127.0.0.1:{registry.port}" and registry.port > 0
    assert registry.http_address and listening.console == f"http://{registry.http_address}/"
    port = registry.port
    registry.kill()
    assert await registry.wait_exit() == -signal.SIGKILL
    await registry.restart()
    assert registry.port == port and registry.starts == 2 and registry.running
    assert await registry.stop() == 0
    assert registry.log().count("registry listening on") == 2


def test_the_same_from_sync_code(sync_launcher: Launcher) -> None:
    registry = sync_launcher.start_sync("registry")
    assert registry.listening is not None and registry.running
    assert registry.stop_sync() == 0


async def test_a_process_that_exits_before_listening_fails_with_its_output(
    launcher: Launcher,
) -> None:
    with pytest.raises(HarnessError, match=r"(?s)did not start: .*exited \(2\).*--no-such-flag"):
        await launcher.start("registry", "--no-such-flag")


async def test_a_process_that_never_listens_fails_within_the_bound(launcher: Launcher) -> None:
    quiet = launcher.command("quiet", ["sleep", "30"]).spawn()
    started = time.monotonic()
    with pytest.raises(HarnessError, match="still running"):
        await quiet.wait_listening(timeout_s=0.3)
    assert time.monotonic() - started < 5


async def test_stop_escalates_to_sigkill_within_its_bound(launcher: Launcher) -> None:
    stubborn = await launcher.run("stubborn", ["python3", "-c", STUBBORN])
    assert stubborn.listening == Listening("stubborn", "127.0.0.1", 1)
    started = time.monotonic()
    assert await stubborn.stop(timeout_s=0.5) == -signal.SIGKILL
    assert time.monotonic() - started < 5


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def test_pause_stops_the_process_and_resume_continues_it(sync_launcher: Launcher) -> None:
    sleeper = sync_launcher.command("sleeper", ["sleep", "30"]).spawn()
    sleeper.pause()
    for _ in range(500):  # bounded: 5 s
        if _state(sleeper.pid) == "T":
            break
        time.sleep(0.01)
    assert _state(sleeper.pid) == "T"
    sleeper.resume()
    for _ in range(500):
        if _state(sleeper.pid) != "T":
            break
        time.sleep(0.01)
    assert _state(sleeper.pid) in {"S", "R"}


def test_closing_the_launcher_kills_the_whole_process_group(tmp_path: Path) -> None:
    script = 'sleep 60 & echo "child $!"; echo "sh listening on 127.0.0.1:1"; wait'
    with Launcher(tmp_path) as launch:
        shell = launch.run_sync("sh", ["sh", "-c", script])
        child = int(shell.output().split("child ")[1].split()[0])
        assert _state(child) in {"S", "R"}
    for _ in range(500):  # bounded: 5 s for init to reap the orphan
        if not os.path.exists(f"/proc/{child}") or _state(child) == "Z":
            break
        time.sleep(0.01)
    assert not os.path.exists(f"/proc/{child}") or _state(child) == "Z"


async def test_in_process_servers_answer_on_their_port() -> None:
    request = user_service_pb2.GetUserRequest(id="x")
    async with (
        serving([users_service(FakeUsers("a"))]) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        answer = await user_service_pb2_grpc.UserServiceStub(channel).GetUser(request)
    assert answer.user.id == "a" and server.port > 0

    fake = FakeUsers("b")
    async with (
        serving_plain(
            lambda s: user_service_pb2_grpc.add_UserServiceServicer_to_server(fake, s)
        ) as plain,
        grpc.aio.insecure_channel(plain.address) as channel,
    ):
        answer = await user_service_pb2_grpc.UserServiceStub(channel).GetUser(request)
    assert answer.user.id == "b"
