"""Real service processes for end-to-end tests: ``python -m services.<name>`` on port 0.

The process logs ``<name> listening on HOST:PORT`` once bound; :func:`start`
reads the port from that line (with a bound). Output goes to a file, so a
chatty process can never block on a full pipe.

Example::

    async with service_processes(tmp_path) as start:
        user = await start("services.user", "--data-dir", str(tmp_path))
        ... user.address ...
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

__all__ = ["REPO", "ServiceProcess", "StartService", "service_processes"]

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 20.0
EXIT_TIMEOUT_S = 15.0
_LISTENING = re.compile(rb"(\w+) listening on ([\w.\-\[\]:]+):(\d+)")


class ServiceProcess:
    """A started service process and the address it listens on."""

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path
        self.address = ""

    async def wait_listening(self) -> None:
        """Wait (bounded by START_TIMEOUT_S) until the log names the bound address."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            match = _LISTENING.search(self.log_path.read_bytes())
            if match:
                self.address = f"{match[2].decode()}:{match[3].decode()}"
                return
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.02)
        raise AssertionError(f"service did not start:\n{self.log()}")

    def log(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        """Send ``signum`` if the process still runs."""
        if self.process.returncode is None:
            self.process.send_signal(signum)

    async def wait_exit(self) -> int:
        """The exit status (waits at most EXIT_TIMEOUT_S)."""
        return await asyncio.wait_for(self.process.wait(), EXIT_TIMEOUT_S)

    async def stop(self) -> int:
        """SIGTERM and wait for the exit status."""
        self.signal(signal.SIGTERM)
        return await self.wait_exit()


StartService = Callable[..., Awaitable[ServiceProcess]]


@asynccontextmanager
async def service_processes(log_dir: Path) -> AsyncIterator[StartService]:
    """Yield ``start(module, *args, env=None)``; every process is killed at the end."""
    processes: list[ServiceProcess] = []

    async def start(module: str, *args: str, env: dict[str, str] | None = None) -> ServiceProcess:
        log_path = log_dir / f"{module}-{len(processes)}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        full_env.update(env or {})
        with log_path.open("wb") as log_file:  # the child keeps its own descriptor
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", module, "--listen", "127.0.0.1:0", *args),
                cwd=REPO,
                env=full_env,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
            )
        handle = ServiceProcess(process, log_path)
        processes.append(handle)
        await handle.wait_listening()
        return handle

    try:
        yield start
    finally:
        for handle in processes:
            if handle.process.returncode is None:
                handle.process.kill()
            await asyncio.wait_for(handle.process.wait(), 10)
