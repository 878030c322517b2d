"""``make run`` end to end: the supervisor with real registry, user and product processes.

Each test starts ``switchboard run`` on free ports with a temporary data dir
(see ``_platform``), exactly what ``make run`` runs.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from harness import REPO, SWITCHBOARD, TIMINGS, Platform, running_platform
from services.platform import CRASH_LIMIT
from switchboard.registry.v1 import instance_pb2 as pb
from switchboard.registry.v1 import registry_service_pb2 as rs
from switchboard.registry.v1 import registry_service_pb2_grpc as rs_grpc
from switchboard.user.v1 import user_service_pb2 as user_pb
from switchboard.user.v1 import user_service_pb2_grpc as user_grpc

pytestmark = pytest.mark.e2e

SERVICES = {
    "registry": "switchboard.registry.v1.RegistryService",
    "user": "switchboard.user.v1.UserService",
    "product": "switchboard.product.v1.ProductService",
}
RPC_TIMEOUT_S = 5.0
EVENT_TIMEOUT_S = 15.0
BUSY_TIMEOUT_S = 15.0


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    """A fresh platform; its start-up time is reported in the terminal summary."""
    with running_platform(tmp_path, label="supervisor: start to 'switchboard is up'") as p:
        yield p


def serving(address: str, service: str = "") -> bool:
    """True when ``address`` answers grpc.health.v1 SERVING for ``service`` ("" = server)."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=RPC_TIMEOUT_S)
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


class Watcher:
    """Follows the registry's Watch stream of one service on a thread."""

    def __init__(self, channel: grpc.Channel, service: str) -> None:
        stub = rs_grpc.RegistryServiceStub(channel)
        self.service = service
        self.call = stub.Watch(rs.WatchRequest(service=service), timeout=2 * EVENT_TIMEOUT_S)
        self.live = 0
        self.saw_removed = False
        self.snapshot = threading.Event()
        self.done = threading.Event()  # REMOVED arrived, or the stream ended without it
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        try:
            for reply in self.call:
                if reply.HasField("snapshot"):
                    self.live = len(reply.snapshot.instances)
                    self.snapshot.set()
                elif reply.event.type == pb.INSTANCE_EVENT_TYPE_REMOVED:
                    self.saw_removed = True
                    self.done.set()
        except grpc.RpcError:  # cancelled by close(), or the registry went away
            pass
        finally:
            self.done.set()

    def close(self) -> None:
        self.call.cancel()
        self._thread.join(timeout=EVENT_TIMEOUT_S)


def stop_line(output: str, name: str) -> int:
    """The index of the supervisor's ``<name> | stopped (exit code 0)`` line."""
    match = re.search(rf"^{name}\s*\| stopped \(exit code 0\)$", output, re.MULTILINE)
    assert match, f"{name} was not stopped with exit code 0:\n{output}"
    return match.start()


def test_up_healthy_then_sigterm_deregisters_before_the_registry_stops(
    platform: Platform,
) -> None:
    children = platform.children()
    assert sorted(children) == ["product", "registry", "user"], children
    for name, service in SERVICES.items():
        assert serving(platform.ports.address(name)), name
        assert serving(platform.ports.address(name), service), service
    assert {p.name for p in platform.data_dir.iterdir()} >= {"user.db", "product.db"}
    with grpc.insecure_channel(platform.ports.address("registry")) as channel:
        watchers = [Watcher(channel, "user"), Watcher(channel, "product")]
        try:
            for w in watchers:
                assert w.snapshot.wait(EVENT_TIMEOUT_S) and w.live == 1, f"{w.service} registered"
            platform.signal(signal.SIGTERM)
            for w in watchers:
                assert w.done.wait(EVENT_TIMEOUT_S), f"no REMOVED {w.service} in time"
                assert w.saw_removed, f"the registry stopped before {w.service} deregistered"
        finally:
            for w in watchers:
                w.close()
    assert platform.wait_exit() == 0, platform.output()
    out = platform.output()
    assert max(stop_line(out, "user"), stop_line(out, "product")) < stop_line(out, "registry")
    assert "Traceback" not in out
    assert not any(alive(pid) for pid in children.values()), "a child outlived the supervisor"


def test_a_second_supervisor_on_the_same_ports_fails_fast_saying_busy(
    platform: Platform, tmp_path: Path
) -> None:
    env = {**os.environ, **platform.ports.env(), "DATA_DIR": str(tmp_path / "second")}
    started = time.monotonic()
    second = subprocess.run(
        [SWITCHBOARD, "run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUSY_TIMEOUT_S,
        start_new_session=True,
    )
    TIMINGS["supervisor: second supervisor exits 2 (busy) after"] = time.monotonic() - started
    assert second.returncode == 2, second
    assert second.stderr.count("\n") == 1, "one line"
    for name, port in platform.ports.env().items():  # every busy port, at once
        assert str(port) in second.stderr and f"{name}={int(port) + 100}" in second.stderr
    assert "busy" in second.stderr and "DATA_DIR=" in second.stderr
    assert "Traceback" not in second.stderr + second.stdout
    assert second.stdout == "", "nothing may start"
    assert serving(platform.ports.address("registry")), "the first platform is unharmed"


def test_a_child_killed_with_sigkill_is_restarted_and_registers_again(
    platform: Platform,
) -> None:
    before = platform.children()
    os.kill(before["user"], signal.SIGKILL)
    platform.wait_for("user restarted and up again", EVENT_TIMEOUT_S)
    out = platform.output()
    assert re.search(r"user exited unexpectedly with code -9; restarting in 0\.1 s", out), out
    after = platform.children()
    assert sorted(after) == ["product", "registry", "user"]
    assert after["user"] != before["user"] and after["registry"] == before["registry"]
    assert serving(platform.ports.address("user"), SERVICES["user"])
    with grpc.insecure_channel(platform.ports.address("registry")) as channel:
        stub = rs_grpc.RegistryServiceStub(channel)
        reply = stub.Resolve(rs.ResolveRequest(service="user"), timeout=RPC_TIMEOUT_S)
        assert any(i.address.endswith(f":{platform.ports.user}") for i in reply.instances)
    assert platform.terminate() == 0, platform.output()
    assert "Traceback" not in platform.output()


def test_a_child_that_exits_cleanly_is_not_restarted(platform: Platform) -> None:
    os.kill(platform.children()["product"], signal.SIGTERM)  # the service exits 0
    platform.wait_for("product exited cleanly (code 0); not restarting it", EVENT_TIMEOUT_S)
    assert "product" not in platform.children()
    assert serving(platform.ports.address("user")), "the rest runs on"
    assert platform.terminate() == 0, platform.output()


def test_a_crash_looping_child_stops_everything_with_exit_1(platform: Platform) -> None:
    first = platform.children()
    for crash in range(1, CRASH_LIMIT + 1):
        os.kill(platform.children()["product"], signal.SIGKILL)
        if crash < CRASH_LIMIT:
            wait_count(platform, "product restarted and up again", crash)
    assert platform.wait_exit() == 1, platform.output()
    out = platform.output()
    assert f"its {CRASH_LIMIT}th crash in 60 s: it is crash-looping" in out, out
    stop_line(out, "user")
    stop_line(out, "registry")
    assert "Traceback" not in out
    assert not any(alive(pid) for pid in first.values()), "a child outlived the supervisor"


def wait_count(platform: Platform, text: str, count: int) -> None:
    """Wait (bounded) until ``text`` appears ``count`` times in the output."""
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while platform.output().count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} x{count}:\n{platform.output()}"
        assert platform.process.running, platform.output()
        time.sleep(0.02)


def test_sighup_from_a_closed_terminal_stops_every_child(platform: Platform) -> None:
    children = platform.children()
    platform.signal(signal.SIGHUP)
    assert platform.wait_exit() == 0, platform.output()
    for name in children:
        stop_line(platform.output(), name)
    assert not any(alive(pid) for pid in children.values()), "a child was orphaned"


def test_a_bad_port_variable_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "USER_PORT": "not-a-port", "DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [SWITCHBOARD, "run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUSY_TIMEOUT_S,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "switchboard run: USER_PORT='not-a-port' is not a port number: use 1-65535, "
        "e.g. USER_PORT=6000\n"
    )
    assert result.stdout == ""


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _get_user(address: str, token: str | None) -> grpc.StatusCode:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with grpc.insecure_channel(address) as channel:
        stub = user_grpc.UserServiceStub(channel)
        try:
            stub.GetUser(
                user_pb.GetUserRequest(id="nobody"), timeout=RPC_TIMEOUT_S, metadata=metadata
            )
        except grpc.RpcError as err:
            return err.code()
    return grpc.StatusCode.OK


def test_auth_1_starts_with_caller_authentication_and_prints_a_token(tmp_path: Path) -> None:
    """``make run AUTH=1``: services refuse anonymous calls; the banner's token gets through."""
    with running_platform(tmp_path, env={"AUTH": "1"}) as platform:
        banner = platform.output()
        match = re.search(r"^export TOKEN=(\S+)$", banner, re.MULTILINE)
        assert match and "auth is on: policy" in banner, banner
        user = f"127.0.0.1:{platform.ports.user}"
        assert _get_user(user, None) is grpc.StatusCode.UNAUTHENTICATED
        assert _get_user(user, match[1]) is grpc.StatusCode.NOT_FOUND  # past auth, no such user


def test_without_auth_the_banner_says_the_platform_is_open(platform: Platform) -> None:
    assert "auth is off (development)" in platform.output()
    assert _get_user(f"127.0.0.1:{platform.ports.user}", None) is grpc.StatusCode.NOT_FOUND
