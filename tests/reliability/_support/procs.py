"""Real Switchboard processes for fault tests: each in its own process group, always reaped.

A process is started as ``python -m <module> --listen HOST:PORT <args>`` (port 0
unless restarting on a port it had), with its output in a log file (a full pipe
can never block it) and in a new session, so stopping it kills the whole group.
The bound address is read from the ``<name> listening on HOST:PORT`` log line.

Example::

    async with Launcher(tmp_path) as launch:
        registry = await launch.start("registry")
        user = await launch.start("services.user", "--data-dir", str(tmp_path / "u"),
                                  "--registry", registry.address)
        user.kill()                          # SIGKILL to the process group
        await user.restart()                 # same port, same arguments
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from pathlib import Path
from types import TracebackType

__all__ = ["REPO", "Launcher", "Proc"]

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT_S = 20.0
EXIT_TIMEOUT_S = 20.0
_LISTENING = re.compile(rb"(\w+) listening on ([\w.\-\[\]:]+):(\d+)")


class Proc:
    """One started service process: its address, log, signals and resource use."""

    def __init__(self, module: str, args: tuple[str, ...], env: dict[str, str], log: Path) -> None:
        self.module = module
        self.args = args
        self.env = env
        self.log_path = log
        self.process: asyncio.subprocess.Process | None = None
        self.port = 0
        self.starts = 0

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>`` once listening."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self, port: int = 0) -> Proc:
        """Start (again) on ``port`` (0: a free one) and wait until it listens."""
        self.starts += 1
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log_file:  # the child keeps its own descriptor
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", self.module, "--listen", f"127.0.0.1:{port}", *self.args),
                cwd=REPO,
                env=self.env,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        await self._wait_listening(offset)
        return self

    async def restart(self) -> Proc:
        """Start again on the port it had (after it exited or was killed)."""
        if self.running:
            await self.wait_exit()
        return await self.start(self.port)

    async def _wait_listening(self, offset: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            match = _LISTENING.search(self.log_path.read_bytes()[offset:])
            if match:
                self.port = int(match[3])
                return
            if not self.running:
                break
            await asyncio.sleep(0.02)  # polling a log file: there is no event to await
        raise AssertionError(f"{self.module} did not start:\n{self.log()[-4000:]}")

    def log(self) -> str:
        """Everything the process (all its runs) wrote so far."""
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process (not its group: SIGTERM is for the server itself)."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL the whole process group."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    async def wait_exit(self, timeout_s: float = EXIT_TIMEOUT_S) -> int:
        """The exit status, waiting at most ``timeout_s``."""
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout_s)

    async def stop(self) -> int:
        """SIGTERM, then the exit status (SIGKILL if it does not exit in time)."""
        self.signal(signal.SIGTERM)
        try:
            return await self.wait_exit()
        finally:
            self.kill()

    def rss_bytes(self) -> int:
        """Resident memory of the process now."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS line")

    def open_fds(self) -> int:
        """How many file descriptors the process holds now."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))


class Launcher:
    """Starts processes; on exit SIGKILLs every process group still running and reaps it."""

    def __init__(self, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self._log_dir = log_dir
        self._env = env or {}
        self._procs: list[Proc] = []

    async def __aenter__(self) -> Launcher:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def prepare(self, module: str, *args: str, env: dict[str, str] | None = None) -> Proc:
        """A process not started yet (``await proc.start()``)."""
        # A SWITCHBOARD_* variable of the developer's shell must not leak into a test.
        full = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        full.update(self._env)
        full.update(env or {})
        log = self._log_dir / f"{module.rsplit('.', 1)[-1]}-{len(self._procs)}.log"
        proc = Proc(module, args, full, log)
        self._procs.append(proc)
        return proc

    async def start(self, module: str, *args: str, env: dict[str, str] | None = None) -> Proc:
        """Start ``python -m module --listen 127.0.0.1:0 *args`` and wait until it listens."""
        return await self.prepare(module, *args, env=env).start()

    async def close(self) -> None:
        """Kill every process group still running and reap the processes."""
        for proc in self._procs:
            proc.kill()
        for proc in self._procs:
            if proc.process is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.process.wait(), 10)
