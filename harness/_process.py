"""Real processes for tests and the bench: started, read, signalled and always reaped.

One launcher for every process a test or bench case starts. A process runs in
its own session (so stopping it stops whatever it spawned), with stdin closed
and its combined output in a log file (a full pipe can never block it). A
Switchboard server is started on port 0 and found through the listening line
it prints (:mod:`harness._listening`). Every method has a bounded wait and two
spellings: ``await proc.stop()`` from async code, ``proc.stop_sync()`` from sync
code.

Example::

    async with Launcher(tmp_path) as launch:
        registry = await launch.start("registry")             # python -m registry --listen ...:0
        user = await launch.start("services.user", "--registry", registry.address)
        user.kill()                                            # SIGKILL its process group
        await user.restart()                                   # same port, same arguments
        etcd = await launch.run("etcd", ["etcd", ...], listening=False)

    with Launcher() as launch:                                 # the same from sync code
        registry = launch.start_sync("registry")
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from harness._listening import Listening, parse_listening
from harness._stats import Memory, open_fds, read_cpu_ticks, read_memory

__all__ = [
    "PYTHON",
    "REPO",
    "START_TIMEOUT_S",
    "STOP_TIMEOUT_S",
    "HarnessError",
    "Launcher",
    "Process",
    "StartProcess",
    "clean_env",
    "forget_group",
    "track_group",
]

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0  # a server drains for up to its grace period after SIGTERM
_POLL_S = 0.02  # polling a log file or an exit status: there is no event to await
_LIVE_GROUPS: set[int] = set()
_SIGKILL = signal.SIGKILL  # Process.signal shadows the module in its class body


class HarnessError(AssertionError):
    """A process did not do what the test needed (start, print, exit) in time.

    An AssertionError, so pytest shows it as a failure with the process's output.
    """


def clean_env(
    overrides: Mapping[str, str] | None = None, drop: Sequence[str] = ()
) -> dict[str, str]:
    """This environment without the developer's ``SWITCHBOARD_*`` settings (nor variables
    starting with a ``drop`` prefix), plus ``overrides``.

    Example: ``clean_env({"SWITCHBOARD_LOG_LEVEL": "debug"}, drop=["OTEL_"])``.
    """
    prefixes = ("SWITCHBOARD_", *drop)
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides or {})
    return env


def track_group(pgid: int) -> None:
    """Remember a process group to SIGKILL at interpreter exit should it still run then."""
    _LIVE_GROUPS.add(pgid)


def forget_group(pgid: int) -> None:
    """The group has been stopped: no need to kill it at exit."""
    _LIVE_GROUPS.discard(pgid)


def _kill_group(pgid: int, signum: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


@atexit.register
def _kill_leftovers() -> None:
    """Last resort at interpreter exit: SIGKILL every group started and not stopped."""
    for pgid in list(_LIVE_GROUPS):
        _kill_group(pgid)


Command = Callable[[int], list[str]]
"""The argv of a process given the port to listen on (0: any)."""


class Process:
    """One process: its argv, log, listening line, signals and resource use."""

    def __init__(
        self,
        name: str,
        command: Command,
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
        module: str = "",
    ) -> None:
        self.name = name
        self.module = module or name
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None
        self.listening: Listening | None = None
        self.port = 0
        """The port it listens (or last listened) on; restarts reuse it."""
        self.starts = 0
        self._command = command
        self._offset = 0
        self._address = ""

    # -- identity ---------------------------------------------------------------------

    @property
    def argv(self) -> list[str]:
        """The command line of the next (or current) run."""
        return self._command(self.port)

    @property
    def pid(self) -> int:
        """The process id (also its process group id)."""
        if self.popen is None:
            raise HarnessError(f"{self.name} was never started")
        return self.popen.pid

    @property
    def running(self) -> bool:
        """True from start until it has exited (and been reaped)."""
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status (negative: the signal), None while it runs."""
        return None if self.popen is None else self.popen.poll()

    @property
    def address(self) -> str:
        """``HOST:PORT`` from its listening line (or as set for a program that prints none)."""
        if self._address:
            return self._address
        if self.listening is not None:
            return self.listening.address
        return f"127.0.0.1:{self.port}"

    @address.setter
    def address(self, value: str) -> None:
        self._address = value

    @property
    def http_address(self) -> str | None:
        """``HOST:PORT`` of its HTTP side port, if its listening line names one."""
        return None if self.listening is None else self.listening.http

    # -- starting ---------------------------------------------------------------------

    def spawn(self, port: int | None = None) -> Process:
        """Start the process (on ``port``, default: the one it had) without waiting."""
        if self.running:
            raise HarnessError(f"{self.name} is already running")
        if port is not None:
            self.port = port
        self.starts += 1
        self.listening = None
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.popen = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        track_group(self.popen.pid)
        return self

    async def start(self, port: int = 0, timeout_s: float = START_TIMEOUT_S) -> Process:
        """Start on ``port`` (0: a free one) and wait until it prints its listening line."""
        self.spawn(port)
        await self.wait_listening(timeout_s)
        return self

    def start_sync(self, port: int = 0, timeout_s: float = START_TIMEOUT_S) -> Process:
        """:meth:`start` for sync code."""
        self.spawn(port)
        self.wait_listening_sync(timeout_s)
        return self

    async def restart(self, timeout_s: float = START_TIMEOUT_S) -> Process:
        """Start again on the port it had (after it exited or was killed)."""
        if self.running:
            await self.wait_exit()
        return await self.start(self.port, timeout_s)

    # -- reading ----------------------------------------------------------------------

    def log(self, tail: int | None = None) -> str:
        """Everything it wrote (all runs), or the last ``tail`` characters."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text if tail is None else text[-tail:]

    def output(self) -> str:
        """What the current run wrote so far."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def _found_listening(self) -> bool:
        listening = parse_listening(self.output())
        if listening is None:
            return False
        self.listening, self.port = listening, listening.port
        return True

    async def wait_listening(self, timeout_s: float = START_TIMEOUT_S) -> Listening:
        """Wait (bounded) for the listening line of this run; fail if it exits first."""
        await self._until(self._found_listening, "listening line", timeout_s)
        assert self.listening is not None
        return self.listening

    def wait_listening_sync(self, timeout_s: float = START_TIMEOUT_S) -> Listening:
        """:meth:`wait_listening` for sync code."""
        self._until_sync(self._found_listening, "listening line", timeout_s)
        assert self.listening is not None
        return self.listening

    async def wait_output(self, text: str, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait (bounded) until this run's output contains ``text``."""
        await self._until(lambda: text in self.output(), repr(text), timeout_s)

    def wait_output_sync(self, text: str, timeout_s: float = START_TIMEOUT_S) -> None:
        """:meth:`wait_output` for sync code."""
        self._until_sync(lambda: text in self.output(), repr(text), timeout_s)

    async def _until(self, found: Callable[[], bool], what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not found():
            if not self.running and not found():
                raise self._failure(what, "exited", timeout_s)
            if time.monotonic() > deadline:
                raise self._failure(what, "timeout", timeout_s)
            await asyncio.sleep(_POLL_S)

    def _until_sync(self, found: Callable[[], bool], what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not found():
            if not self.running and not found():
                raise self._failure(what, "exited", timeout_s)
            if time.monotonic() > deadline:
                raise self._failure(what, "timeout", timeout_s)
            time.sleep(_POLL_S)

    def _failure(self, what: str, why: str, timeout_s: float) -> HarnessError:
        state = f"exited ({self.returncode})" if why == "exited" else "still running"
        return HarnessError(
            f"{self.name} did not start: no {what} within {timeout_s} s, {state}; "
            f"argv {' '.join(self.argv)}\n{self.log(4000)}"
        )

    # -- signals and stopping ---------------------------------------------------------

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process itself (SIGTERM is for the server, not its group)."""
        if self.running:
            assert self.popen is not None
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signum)

    def kill(self, signum: int = _SIGKILL) -> None:
        """Send ``signum`` (default SIGKILL) to the whole process group while it runs."""
        if self.running:
            _kill_group(self.pid, signum)

    def pause(self) -> None:
        """SIGSTOP the group: it holds its sockets and answers nothing."""
        self.kill(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT the group after :meth:`pause`."""
        self.kill(signal.SIGCONT)

    async def wait_exit(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """The exit status, waiting (bounded) for it."""
        deadline = time.monotonic() + timeout_s
        while (code := self._reaped()) is None:
            if time.monotonic() > deadline:
                raise HarnessError(f"{self.name} still runs after {timeout_s} s:\n{self.log(4000)}")
            await asyncio.sleep(_POLL_S / 2)
        return code

    def wait_exit_sync(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """:meth:`wait_exit` for sync code."""
        if self.popen is None:
            raise HarnessError(f"{self.name} was never started")
        try:
            self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise HarnessError(
                f"{self.name} still runs after {timeout_s} s:\n{self.log(4000)}"
            ) from None
        code = self._reaped()
        assert code is not None
        return code

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM; SIGKILL the group if it has not exited within ``timeout_s``; the status."""
        self.signal(signal.SIGTERM)
        try:
            return await self.wait_exit(timeout_s)
        except HarnessError:
            self.kill()
            return await self.wait_exit(timeout_s)

    def stop_sync(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """:meth:`stop` for sync code."""
        self.signal(signal.SIGTERM)
        try:
            return self.wait_exit_sync(timeout_s)
        except HarnessError:
            self.kill()
            return self.wait_exit_sync(timeout_s)

    def _reaped(self) -> int | None:
        """The exit status once exited; then whatever is left of its group is killed."""
        if self.popen is None:
            raise HarnessError(f"{self.name} was never started")
        code = self.popen.poll()
        if code is not None and self.popen.pid in _LIVE_GROUPS:
            forget_group(self.popen.pid)
            _kill_group(self.popen.pid)  # children that outlived the leader
        return code

    # -- resource use -----------------------------------------------------------------

    def memory(self) -> Memory:
        """VmRSS and VmHWM now (zeros once it is gone)."""
        return read_memory(self.pid)

    def rss_bytes(self) -> int:
        """Resident memory now, in bytes."""
        return self.memory().rss

    def cpu_ticks(self) -> int:
        """User + system CPU time so far, in clock ticks (all threads)."""
        return read_cpu_ticks(self.pid)

    def open_fds(self) -> int:
        """How many file descriptors it holds now."""
        return open_fds(self.pid)


StartProcess = Callable[..., Awaitable[Process]]
"""What a fixture yielding :meth:`Launcher.start` hands a test: ``await start(module, *args)``."""


class Launcher:
    """Starts processes and, when its block ends, kills and reaps every one still running.

    ``env`` is added to every process's environment (after the developer's
    ``SWITCHBOARD_*`` variables, and any starting with a ``drop`` prefix, are
    removed); logs go to ``log_dir`` (default: a
    temporary directory removed at the end). With ``graceful=True`` the end of
    the block stops each process with SIGTERM first (the last started first).
    """

    def __init__(
        self,
        log_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        *,
        cwd: Path = REPO,
        host: str = "127.0.0.1",
        graceful: bool = False,
        drop: Sequence[str] = (),
    ) -> None:
        self._own_dir = log_dir is None
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="switchboard-harness-"))
        self.env = dict(env or {})
        self.cwd = cwd
        self.host = host
        self.graceful = graceful
        self.drop = tuple(drop)
        self.processes: list[Process] = []
        self._cleanups: dict[int, list[Callable[[], None]]] = {}

    def _log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}-{len(self.processes)}.log"

    def _env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        return clean_env({**self.env, **(env or {})}, self.drop)

    def prepare(
        self, module: str, *args: str, env: Mapping[str, str] | None = None, name: str = ""
    ) -> Process:
        """``python -m module --listen HOST:PORT *args``, not started yet (``await p.start()``)."""
        host = self.host

        def command(port: int) -> list[str]:
            return [PYTHON, "-m", module, "--listen", f"{host}:{port}", *args]

        name = name or module.rsplit(".", 1)[-1]
        proc = Process(
            name, command, env=self._env(env), cwd=self.cwd, log_path=self._log_path(name),
            module=module,
        )  # fmt: skip
        self.processes.append(proc)
        return proc

    def command(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Process:
        """Any program (``argv`` as is), not started yet."""
        fixed = list(argv)
        proc = Process(
            name, lambda _port: fixed, env=self._env(env), cwd=cwd or self.cwd,
            log_path=self._log_path(name),
        )  # fmt: skip
        self.processes.append(proc)
        return proc

    async def start(
        self, module: str, *args: str, env: Mapping[str, str] | None = None, name: str = ""
    ) -> Process:
        """Start ``python -m module --listen HOST:0 *args``; wait until it listens."""
        return await self.prepare(module, *args, env=env, name=name).start()

    def start_sync(
        self, module: str, *args: str, env: Mapping[str, str] | None = None, name: str = ""
    ) -> Process:
        """:meth:`start` for sync code."""
        return self.prepare(module, *args, env=env, name=name).start_sync()

    async def run(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        listening: bool = True,
    ) -> Process:
        """Start ``argv``; with ``listening``, wait for its listening line (killed if none)."""
        proc = self.command(name, argv, env=env, cwd=cwd).spawn()
        if listening:
            try:
                await proc.wait_listening()
            except BaseException:
                await self.stop(proc)
                raise
        return proc

    def run_sync(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        listening: bool = True,
    ) -> Process:
        """:meth:`run` for sync code."""
        proc = self.command(name, argv, env=env, cwd=cwd).spawn()
        if listening:
            try:
                proc.wait_listening_sync()
            except BaseException:
                self._forget(proc)
                proc.stop_sync()
                raise
        return proc

    def on_stop(self, proc: Process, cleanup: Callable[[], None]) -> None:
        """Run ``cleanup`` once ``proc`` has been stopped (e.g. remove its data dir)."""
        self._cleanups.setdefault(id(proc), []).append(cleanup)

    def _forget(self, proc: Process) -> None:
        if proc in self.processes:
            self.processes.remove(proc)
        for cleanup in self._cleanups.pop(id(proc), []):
            cleanup()

    async def stop(self, proc: Process) -> int | None:
        """Stop one process now (SIGTERM, then SIGKILL); it is forgotten afterwards."""
        try:
            return await proc.stop() if proc.popen is not None else None
        finally:
            self._forget(proc)

    async def stop_all(self) -> None:
        """Stop every process still known, the last started first."""
        while self.processes:
            with contextlib.suppress(Exception):
                await self.stop(self.processes[-1])

    def close(self) -> None:
        """SIGKILL every process group still running and reap each (bounded)."""
        for proc in self.processes:
            proc.kill()
        for proc in list(self.processes):
            if proc.popen is not None:
                with contextlib.suppress(HarnessError):
                    proc.wait_exit_sync(10)
            self._forget(proc)
        if self._own_dir:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    async def __aenter__(self) -> Launcher:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.graceful:
            await self.stop_all()
        self.close()

    def __enter__(self) -> Launcher:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
