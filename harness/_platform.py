"""The platform as ``make run`` starts it: ``switchboard run`` (the supervisor) on free ports.

:func:`running_platform` picks three free ports, starts ``switchboard run``
with ``REGISTRY_PORT``/``USER_PORT``/``PRODUCT_PORT`` and a temporary
``DATA_DIR`` (nothing else differs from ``make run``), waits (bounded) for
``switchboard is up`` and, on exit, stops it with SIGTERM and kills whatever is
left: the supervisor's process group and each child's (the children run in
their own sessions, so the supervisor's group alone misses them).

Example::

    with running_platform(tmp_path) as platform:
        platform.ports.user          # e.g. 41234
        platform.output()            # everything the supervisor printed so far
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness._ports import free_ports
from harness._process import REPO, HarnessError, Launcher, Process

__all__ = [
    "SWITCHBOARD",
    "TIMINGS",
    "UP_LINE",
    "Platform",
    "Ports",
    "platform_ports",
    "running_platform",
    "start_platform",
]

SWITCHBOARD = str(Path(sys.executable).parent / "switchboard")
"""The ``switchboard`` console script of this venv (``make run`` runs ``switchboard run``)."""
UP_LINE = "switchboard is up"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0  # the supervisor gives each child up to 20 s after SIGTERM
_START_ATTEMPTS = 3  # a free port can be taken between our probe and the supervisor's bind

TIMINGS: dict[str, float] = {}
"""Measured durations (label -> seconds): the slowest platform start per label."""


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


def platform_ports() -> Ports:
    """Three distinct ports that are free right now."""
    registry, user, product = free_ports(3)
    return Ports(registry, user, product)


class Platform:
    """A running supervisor process, its ports and its (combined) output."""

    def __init__(self, process: Process, ports: Ports, data_dir: Path) -> None:
        self.process = process
        self.ports = ports
        self.data_dir = data_dir
        self.started = time.monotonic()
        self.up_after_s = 0.0
        self._children: dict[int, str] = {}

    @property
    def log_path(self) -> Path:
        """The file the supervisor and its children write to."""
        return self.process.log_path

    def output(self) -> str:
        """Everything the supervisor and its children printed so far."""
        return self.process.output()

    def wait_for(self, text: str, timeout_s: float) -> float:
        """Wait until ``text`` appears in the output; return the seconds since start."""
        try:
            self.process.wait_output_sync(text, timeout_s)
        except HarnessError:
            code = self.process.returncode
            state = f"supervisor exited ({code}) before" if code is not None else "no"
            raise HarnessError(f"{state} {text!r} within {timeout_s} s:\n{self.output()}") from None
        return time.monotonic() - self.started

    def wait_exit(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """The supervisor's exit code (bounded wait)."""
        self.children()  # remember them: after the supervisor exits they are no longer its
        return self.process.wait_exit_sync(timeout_s)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the supervisor (remembering its children first)."""
        self.children()
        self.process.signal(signum)

    def children(self) -> dict[str, int]:
        """The supervisor's child processes right now, by service: ``{"user": 1234, ...}``."""
        current = _children_of(self.process.pid) if self.process.running else {}
        self._children.update(current)
        return {_service_of(cmd): pid for pid, cmd in current.items()}

    def terminate(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, as Ctrl-C / ``kill`` would, and the exit code (bounded wait)."""
        self.signal(signal.SIGTERM)
        return self.wait_exit(timeout_s)

    def kill_all(self) -> None:
        """Teardown: kill the supervisor's group and every child's group still alive."""
        if self.process.running:
            self.children()
            self.process.kill()
            self.process.wait_exit_sync(STOP_TIMEOUT_S)
        for pid, cmd in self._children.items():
            if _cmdline(pid) == cmd:  # still the same process, not a reused pid
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM if it still runs, then :meth:`kill_all` whatever happened."""
        try:
            if self.process.running:
                self.terminate(timeout_s)
        except HarnessError:
            pass
        finally:
            self.kill_all()


def start_platform(
    launcher: Launcher,
    data_dir: Path,
    ports: Ports,
    env: Mapping[str, str] | None = None,
    repo: Path = REPO,
    args: Sequence[str] = (),
    *,
    override_ports: bool = True,
) -> Platform:
    """Start ``switchboard run *args`` in ``repo`` (own session, as ``make run`` does).

    ``ports`` reach it as ``REGISTRY_PORT``/``USER_PORT``/``PRODUCT_PORT`` unless
    ``override_ports`` is False (a platform file whose own ports are already free).
    """
    port_env = ports.env() if override_ports else {}
    full_env = {**port_env, "DATA_DIR": str(data_dir), **(env or {})}
    process = launcher.command("supervisor", [SWITCHBOARD, "run", *args], env=full_env, cwd=repo)
    return Platform(process.spawn(), ports, data_dir)


@contextlib.contextmanager
def running_platform(
    workdir: Path,
    label: str = "",
    env: Mapping[str, str] | None = None,
    repo: Path = REPO,
    args: Sequence[str] = (),
    timeout_s: float = START_TIMEOUT_S,
) -> Iterator[Platform]:
    """Start the platform on free ports, wait until it is up, and always clean up.

    ``label`` names the start-up time in :data:`TIMINGS` (the slowest is kept;
    nothing is recorded without a label). ``env`` adds variables (e.g. another
    service's ``ORDERS_PORT``); ``repo`` is the checkout to run in; ``args`` go
    after ``switchboard run`` (e.g. ``--file``).
    """
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    with Launcher(workdir) as launcher:
        for _ in range(_START_ATTEMPTS):
            platform = start_platform(launcher, data_dir, platform_ports(), env, repo, args)
            try:
                if not _came_up(platform, timeout_s):
                    continue
                if label:
                    TIMINGS[label] = max(TIMINGS.get(label, 0.0), platform.up_after_s)
                yield platform
                return
            finally:
                platform.stop()
    raise HarnessError(f"every port was busy, {_START_ATTEMPTS} times in a row")


def _came_up(platform: Platform, timeout_s: float) -> bool:
    """True once up; False if it lost a port race (exit 2, "busy"); raises on anything else."""
    try:
        platform.up_after_s = platform.wait_for(UP_LINE, timeout_s)
        return True
    except HarnessError:
        if platform.process.returncode == 2 and "busy" in platform.output():
            return False
        platform.kill_all()
        raise


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
