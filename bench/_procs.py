"""Processes the bench starts: ``harness.Launcher`` processes pinned to a core.

The launching itself (own process group, log file, the listening line, SIGTERM
then SIGKILL, the ``atexit`` last resort) is the shared test harness's
(:mod:`harness`); the bench adds only where each process runs: servers on one
core, load on another (``taskset``). :class:`Procs` stops every process it
started, gracefully and the last started first, when its ``async with`` block
ends, whatever ends it (an error, Ctrl-C).

Example::

    async with Procs(log_dir, cpus) as procs:
        registry = await procs.start("registry", [sys.executable, "-m", "registry",
                                                  "--listen", "127.0.0.1:0"])
        print(registry.address, registry.cpu_ticks(), registry.memory())
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from harness import (
    Launcher,
    Memory,
    forget_group,
    free_port,
    read_cpu_ticks,
    read_memory,
    track_group,
)
from harness import Process as Proc

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


class Procs:
    """Starts pinned processes and stops every one of them when the block ends."""

    def __init__(self, log_dir: Path, cpus: CpuPlan) -> None:
        self.log_dir = log_dir
        self.cpus = cpus
        self._launcher = Launcher(log_dir, graceful=True)

    async def __aenter__(self) -> Procs:
        await self._launcher.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._launcher.__aexit__(exc_type, exc, tb)

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
        return await self._launcher.run(name, self._pinned(argv, pin), env=env, listening=listening)

    def on_stop(self, proc: Proc, cleanup: Callable[[], None]) -> None:
        """Run ``cleanup`` once ``proc`` has been stopped (e.g. remove its data dir)."""
        self._launcher.on_stop(proc, cleanup)

    async def stop(self, proc: Proc) -> int | None:
        """Stop one process now (it is forgotten afterwards)."""
        return await self._launcher.stop(proc)

    async def stop_all(self) -> None:
        """Stop every process still running, the last started first."""
        await self._launcher.stop_all()

    def _pinned(self, argv: Sequence[str], pin: str | None) -> list[str]:
        core = {"server": self.cpus.server, "load": self.cpus.load}.get(pin or "")
        if core is None:
            return list(argv)
        return ["taskset", "-c", str(core), *argv]
