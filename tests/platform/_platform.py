"""The platform as ``make run`` starts it, for end-to-end tests: ``switchboard run`` on free ports.

:func:`running_platform` picks three free ports, starts ``switchboard run``
(the console script ``make run`` calls) with ``REGISTRY_PORT``/``USER_PORT``/``PRODUCT_PORT``
and a temporary ``DATA_DIR`` (nothing else differs from ``make run``), waits
(bounded) for ``switchboard is up`` and, on exit, stops it with SIGTERM and
kills whatever is left: the supervisor's process group and each child's (the
children run in their own sessions, so the supervisor's group alone misses them).

Example::

    with running_platform(tmp_path) as platform:
        platform.ports.user          # e.g. 41234
        platform.output()            # everything the supervisor printed so far
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = [
    "REPO",
    "SWITCHBOARD",
    "TIMINGS",
    "UP_LINE",
    "Platform",
    "Ports",
    "free_port",
    "free_ports",
    "require_tools",
    "running_platform",
    "start_platform",
    "start_registry",
    "write_timings",
]

REPO = Path(__file__).resolve().parents[2]
SWITCHBOARD = str(Path(sys.executable).parent / "switchboard")
"""The ``switchboard`` console script of this venv (``make run`` runs ``switchboard run``)."""
UP_LINE = "switchboard is up"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0  # the supervisor gives each child up to 20 s after SIGTERM
_START_ATTEMPTS = 3  # a free port can be taken between our probe and the supervisor's bind
_POLL_S = 0.02

TIMINGS: dict[str, float] = {}
"""Measured durations (label -> seconds), printed in the pytest terminal summary."""


@dataclass(frozen=True)
class Ports:
    """The platform's three ports on 127.0.0.1."""

    registry: int
    user: int
    product: int

    def env(self) -> dict[str, str]:
        """The variables ``make run`` reads, e.g. ``{"USER_PORT": "41234", ...}``."""
        return {
            "REGISTRY_PORT": str(self.registry),
            "USER_PORT": str(self.user),
            "PRODUCT_PORT": str(self.product),
        }

    def address(self, name: str) -> str:
        """``127.0.0.1:<port>`` of ``registry``, ``user`` or ``product``."""
        port: int = getattr(self, name)
        return f"127.0.0.1:{port}"


def free_ports() -> Ports:
    """Three distinct ports that are free right now (bound together, then released)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(3)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        registry, user, product = (sock.getsockname()[1] for sock in socks)
    return Ports(registry, user, product)


def free_port() -> int:
    """One port that is free right now (bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def start_registry(port: int, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """A real registry process on 127.0.0.1:``port`` (extra ``args``), once it listens.

    The caller stops it. Example: ``proc = start_registry(free_port(), tmp_path / "r.log")``.
    """
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "registry", "--listen", f"127.0.0.1:{port}", *args],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT_S
    while f"listening on 127.0.0.1:{port}" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)
            raise AssertionError(f"the registry did not start:\n{log.read_text()}")
        time.sleep(_POLL_S)
    return proc


def require_tools(*tools: str, why: str) -> None:
    """Skip when a toolchain is missing, except where a skip would hide a failure.

    With ``CI=true`` a missing tool fails the test instead: CI must run everything.

    Example: ``require_tools("go", why="builds interop/go")``.
    """
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not missing:
        return
    message = f"{', '.join(missing)} not found on PATH ({why})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true, so a missing toolchain is a failure, not a skip")
    pytest.skip(message)


class Platform:
    """A running supervisor process, its ports and its (combined) output."""

    def __init__(
        self, proc: subprocess.Popen[bytes], log_path: Path, ports: Ports, data_dir: Path
    ) -> None:
        self.proc = proc
        self.log_path = log_path
        self.ports = ports
        self.data_dir = data_dir
        self.started = time.monotonic()
        self.up_after_s = 0.0
        self._children: dict[int, str] = {}

    def output(self) -> str:
        """Everything the supervisor and its children printed so far."""
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout_s: float) -> float:
        """Wait until ``text`` appears in the output; return the seconds since start."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.output():
                return time.monotonic() - self.started
            if self.proc.poll() is not None and text not in self.output():
                code = self.proc.returncode
                raise AssertionError(
                    f"supervisor exited ({code}) before {text!r}:\n{self.output()}"
                )
            time.sleep(_POLL_S)
        raise AssertionError(f"no {text!r} within {timeout_s} s:\n{self.output()}")

    def wait_exit(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """The supervisor's exit code (bounded wait)."""
        return self.proc.wait(timeout=timeout_s)

    def children(self) -> dict[str, int]:
        """The supervisor's child processes right now, by service: ``{"user": 1234, ...}``."""
        current = _children_of(self.proc.pid)
        self._children.update(current)
        return {_service_of(cmd): pid for pid, cmd in current.items()}

    def terminate(self) -> int:
        """SIGTERM, as Ctrl-C / ``kill`` would, and the exit code (bounded wait)."""
        self.children()  # remember them: after the supervisor exits they are no longer its
        self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit()

    def kill_all(self) -> None:
        """Teardown: kill the supervisor's group and every child's group still alive."""
        if self.proc.poll() is None:
            self.children()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        for pid, cmd in self._children.items():
            if _cmdline(pid) == cmd:  # still the same process, not a reused pid
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)


def start_platform(
    data_dir: Path,
    log_path: Path,
    ports: Ports,
    env: Mapping[str, str] | None = None,
    repo: Path = REPO,
) -> Platform:
    """Start ``switchboard run`` in ``repo``, in its own session (as ``make run`` does)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    full_env.update({**ports.env(), "DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"})
    full_env.update(env or {})
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [SWITCHBOARD, "run"],
            cwd=repo,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Platform(proc, log_path, ports, data_dir)


@contextlib.contextmanager
def running_platform(
    workdir: Path,
    label: str = "",
    env: Mapping[str, str] | None = None,
    repo: Path = REPO,
) -> Iterator[Platform]:
    """Start the platform on free ports, wait until it is up, and always clean up.

    ``label`` names the start-up time in :data:`TIMINGS` (the slowest of the session is
    kept; nothing is recorded without a label). ``env`` adds variables (e.g. another
    service's ``ORDERS_PORT``); ``repo`` is the checkout to run in.
    """
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for attempt in range(_START_ATTEMPTS):
        log = workdir / f"supervisor-{attempt}.log"
        platform = start_platform(data_dir, log, free_ports(), env, repo)
        try:
            if not _came_up(platform):
                continue
            if label:  # the slowest start of the session is the one to report
                TIMINGS[label] = max(TIMINGS.get(label, 0.0), platform.up_after_s)
            yield platform
            return
        finally:
            _stop(platform)
    raise AssertionError(f"every port was busy, {_START_ATTEMPTS} times in a row")


def _came_up(platform: Platform) -> bool:
    """True once up; False if it lost a port race (exit 2, "busy"); raises on anything else."""
    try:
        platform.up_after_s = platform.wait_for(UP_LINE, START_TIMEOUT_S)
        return True
    except AssertionError:
        if platform.proc.poll() == 2 and "busy" in platform.output():
            return False
        platform.kill_all()
        raise


def _stop(platform: Platform) -> None:
    try:
        if platform.proc.poll() is None:
            platform.terminate()
    except subprocess.TimeoutExpired:
        pass
    finally:
        platform.kill_all()


def _children_of(ppid: int) -> dict[int, str]:
    """``{pid: cmdline}`` of the live processes whose parent is ``ppid`` (from /proc)."""
    children: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # exited while we looked
            continue
        if int(fields[1]) == ppid:
            pid = int(stat.parent.name)
            children[pid] = _cmdline(pid)
    return children


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _service_of(cmdline: str) -> str:
    """``... -m services.user`` -> ``user``; ``... -m registry`` -> ``registry``."""
    module = cmdline.split(" -m ", 1)[-1].split()[0] if " -m " in cmdline else cmdline
    return module.rpartition(".")[2]


def write_timings(reporter: pytest.TerminalReporter, package: str) -> None:
    """Print this package's :data:`TIMINGS` in the terminal summary (a pytest hook helper)."""
    mine = {label: s for label, s in TIMINGS.items() if label.startswith(f"{package}: ")}
    if mine:
        reporter.section(f"{package} timings", sep="-")
        for label, seconds in mine.items():
            reporter.write_line(f"{label}: {seconds:.1f} s")
