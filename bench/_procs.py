"""Processes the bench starts: pinned to a core, logged to a file, always stopped.

Every process runs in its own process group (``start_new_session``), so stopping
it stops whatever it spawned too. :class:`Procs` stops every process it started
when its ``async with`` block ends, whatever ends it (an error, Ctrl-C), and an
``atexit`` hook SIGKILLs any group still alive if the interpreter exits anyway.

Example::

    async with Procs(log_dir, cpus) as procs:
        registry = await procs.start("registry", [sys.executable, "-m", "registry",
                                                  "--listen", "127.0.0.1:0"])
        print(registry.address, registry.cpu_ticks(), registry.memory())
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import os
import re
import shutil
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = [
    "CpuPlan",
    "Memory",
    "Proc",
    "Procs",
    "forget_group",
    "free_port",
    "plan_cpus",
    "read_cpu_ticks",
    "read_memory",
    "track_group",
]

LISTENING = re.compile(rb"listening on ([\w.\-\[\]:]+):(\d+)")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
_LIVE_GROUPS: set[int] = set()


@dataclass(frozen=True)
class CpuPlan:
    """Which cores servers and load generators run on (None: not pinned).

    Example: ``plan_cpus()`` on a 2-core machine is ``CpuPlan(server=0, load=1)``.
    """

    server: int | None
    load: int | None

    @property
    def pinned(self) -> bool:
        """True when servers and load run on different cores."""
        return self.server is not None and self.load is not None


def plan_cpus() -> CpuPlan:
    """Servers on the first core we may use, load on the second; unpinned on one core."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 or shutil.which("taskset") is None:
        return CpuPlan(None, None)
    return CpuPlan(cores[0], cores[1])


@dataclass(frozen=True)
class Memory:
    """Resident memory of a process, in bytes: now (VmRSS) and at its peak (VmHWM)."""

    rss: int
    hwm: int


class Proc:
    """One started process: its pid, log file, and (once it listens) its address."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.name = name
        self.process = process
        self.log_path = log_path
        self.address = ""

    @property
    def pid(self) -> int:
        """The process id (also its process group id)."""
        return self.process.pid

    @property
    def running(self) -> bool:
        """True until the process has exited and been reaped."""
        return self.process.returncode is None

    def log(self, tail: int = 600) -> str:
        """The last ``tail`` characters the process wrote."""
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def cpu_ticks(self) -> int:
        """User + system CPU time so far, in clock ticks (all threads)."""
        return read_cpu_ticks(self.pid)

    def memory(self) -> Memory:
        """VmRSS and VmHWM from /proc/<pid>/status (zero once the process is gone)."""
        return read_memory(self.pid)

    async def wait_log(self, text: str, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait until the process's output contains ``text``."""
        deadline = time.monotonic() + timeout_s
        needle = text.encode()
        while time.monotonic() < deadline and self.running:
            if needle in self.log_path.read_bytes():
                return
            await asyncio.sleep(0.02)
        raise RuntimeError(f"{self.name} never said {text!r}:\n{self.log()}")

    async def wait_listening(self, timeout_s: float = START_TIMEOUT_S) -> str:
        """Wait for the ``... listening on HOST:PORT`` log line; return ``HOST:PORT``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.running:
            match = LISTENING.search(self.log_path.read_bytes())
            if match:
                self.address = f"{match[1].decode()}:{match[2].decode()}"
                return self.address
            await asyncio.sleep(0.02)
        raise RuntimeError(f"{self.name} did not start listening:\n{self.log()}")

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """Send ``signum`` to the whole process group (no-op once it has exited)."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signum)

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM the group, then SIGKILL it if it has not exited within ``timeout_s``."""
        self.kill(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout_s)
        except TimeoutError:
            self.kill(signal.SIGKILL)
            await asyncio.wait_for(self.process.wait(), timeout_s)
        _LIVE_GROUPS.discard(self.pid)
        # The group may hold children that outlived the leader.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        return self.process.returncode


class Procs:
    """Starts processes and stops every one of them when the block ends."""

    def __init__(self, log_dir: Path, cpus: CpuPlan) -> None:
        self.log_dir = log_dir
        self.cpus = cpus
        self._procs: list[Proc] = []
        self._serial = itertools.count()
        self._cleanups: dict[int, list[Callable[[], None]]] = {}

    async def __aenter__(self) -> Procs:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop_all()

    async def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        pin: str | None = "server",
        listening: bool = True,
    ) -> Proc:
        """Start ``argv`` pinned to the server (or load) core; wait for its listening line.

        Example: ``await procs.start("echo", [python, "-m", "bench._echo", "--kind", "aio"])``.
        """
        log_path = self.log_dir / f"{name}-{next(self._serial)}.log"
        proc = await self._spawn(name, self._pinned(argv, pin), env, log_path)
        if listening:
            try:
                await proc.wait_listening()
            except BaseException:
                await self.stop(proc)
                raise
        return proc

    def on_stop(self, proc: Proc, cleanup: Callable[[], None]) -> None:
        """Run ``cleanup`` once ``proc`` has been stopped (e.g. remove its data dir)."""
        self._cleanups.setdefault(proc.pid, []).append(cleanup)

    async def stop(self, proc: Proc) -> int | None:
        """Stop one process now (it is forgotten afterwards)."""
        if proc in self._procs:
            self._procs.remove(proc)
        try:
            return await proc.stop()
        finally:
            for cleanup in self._cleanups.pop(proc.pid, []):
                cleanup()

    async def stop_all(self) -> None:
        """Stop every process still running, the last started first."""
        while self._procs:
            with contextlib.suppress(Exception):
                await self.stop(self._procs[-1])

    def _pinned(self, argv: Sequence[str], pin: str | None) -> list[str]:
        core = {"server": self.cpus.server, "load": self.cpus.load}.get(pin or "")
        if core is None:
            return list(argv)
        return ["taskset", "-c", str(core), *argv]

    async def _spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None, log_path: Path
    ) -> Proc:
        with log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        _LIVE_GROUPS.add(process.pid)
        proc = Proc(name, process, log_path)
        self._procs.append(proc)
        return proc


def read_cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` from /proc/<pid>/stat, in clock ticks (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def read_memory(pid: int) -> Memory:
    """VmRSS and VmHWM of ``pid`` in bytes (zeros if it is gone)."""
    values = {"VmRSS": 0, "VmHWM": 0}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return Memory(0, 0)
    for line in lines:
        key, _, rest = line.partition(":")
        if key in values:
            values[key] = int(rest.split()[0]) * 1024
    return Memory(values["VmRSS"], values["VmHWM"])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for etcd, which cannot bind :0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def track_group(pgid: int) -> None:
    """Remember a process group to SIGKILL at exit should it still run then."""
    _LIVE_GROUPS.add(pgid)


def forget_group(pgid: int) -> None:
    """The group has been stopped: no need to kill it at exit."""
    _LIVE_GROUPS.discard(pgid)


def _kill_leftovers() -> None:
    """Last resort at interpreter exit: SIGKILL every group we started and did not stop."""
    for pgid in list(_LIVE_GROUPS):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


atexit.register(_kill_leftovers)
