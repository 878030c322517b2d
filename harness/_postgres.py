"""One PostgreSQL server for the whole test session (or a bench case), and a fresh database
per test.

The server comes from Debian's ``postgresql-15`` package (``make tools-postgres``
installs it where it is missing): ``initdb`` into a temporary directory and
``postgres`` on a free loopback port. ``initdb`` refuses to run as root, so
as root both run as the ``postgres`` user (``setpriv``, which execs: the pid
we hold is the postmaster's, so a test can SIGKILL it). ``fsync=off``: a
SIGKILL of the server keeps the kernel's page cache, so no acknowledged
write can be lost that way; only a machine crash would need the fsync, and
no test simulates one.

Example::

    server = shared_postgres()
    url = server.create_database()      # postgresql://sb@127.0.0.1:PORT/t3
"""

from __future__ import annotations

import atexit
import functools
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from harness._ports import free_port
from harness._process import HarnessError, Process, clean_env

__all__ = ["PG_BIN", "PostgresServer", "shared_postgres"]

PG_BIN = Path(os.environ.get("SWITCHBOARD_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
START_TIMEOUT_S = 30.0
_USER = "sb"


def _as_postgres() -> list[str]:
    """The command prefix that runs a program as the ``postgres`` user when we are root."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]


class PostgresServer:
    """A throw-away PostgreSQL cluster on 127.0.0.1 (see the module docstring)."""

    def __init__(self) -> None:
        if not (PG_BIN / "postgres").exists():
            raise RuntimeError(f"no PostgreSQL in {PG_BIN}: run `make tools-postgres`")
        self.root = Path(tempfile.mkdtemp(prefix="sb-postgres-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.process: Process | None = None
        self._names = itertools.count(1)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._initdb()

    def _initdb(self) -> None:
        command = [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", _USER, "--auth=trust",
                   "-E", "UTF8", "--locale=C", "--no-sync"]  # fmt: skip
        subprocess.run([*_as_postgres(), *command], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        """Start the server (again, after :meth:`kill`) and wait until it accepts connections."""
        command = [str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port),
                   "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
                   "-c", "fsync=off", "-c", "max_connections=300"]  # fmt: skip
        argv = [*_as_postgres(), *command]
        self.process = Process(
            "postgres", lambda _port: argv, env=clean_env(), cwd=self.root,
            log_path=self.root / "server.log",
        ).spawn()  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._accepting():
            if not self.process.running or time.monotonic() > deadline:
                raise HarnessError(f"postgres did not start:\n{self.process.log(4000)}")
            time.sleep(0.05)

    def _accepting(self) -> bool:
        try:
            psycopg.connect(self.url("postgres"), connect_timeout=2).close()
        except psycopg.OperationalError:
            return False
        return True

    def url(self, dbname: str) -> str:
        """The URL of database ``dbname`` on this server."""
        return f"postgresql://{_USER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        name = f"t{next(self._names)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def kill(self) -> None:
        """SIGKILL the postmaster (its backends exit when they notice), and reap it."""
        assert self.process is not None
        self.process.signal(signal.SIGKILL)  # the postmaster alone, not its group
        self.process.wait_exit_sync(10)
        # Backends of a killed postmaster may hold the shared memory a moment longer.
        deadline = time.monotonic() + START_TIMEOUT_S
        while (self.data / "postmaster.pid").exists() and time.monotonic() < deadline:
            if not _backends_alive(self.data):
                (self.data / "postmaster.pid").unlink(missing_ok=True)
                break
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its files."""
        if self.process is not None and self.process.running:
            self.process.signal(signal.SIGINT)
            try:
                self.process.wait_exit_sync(20)
            except HarnessError:
                self.process.kill()
                self.process.wait_exit_sync(10)
        shutil.rmtree(self.root, ignore_errors=True)


def _backends_alive(data: Path) -> bool:
    """True while any process still runs with ``data`` as its data directory."""
    found = subprocess.run(["pgrep", "-f", f"postgres.*{data}"], capture_output=True, check=False)
    return found.returncode == 0


@functools.cache
def shared_postgres() -> PostgresServer:
    """The session's one server, started on first use and stopped at exit."""
    server = PostgresServer()
    server.start()
    atexit.register(server.stop)
    return server
