"""``python -m services.platform.postgres``: one PostgreSQL server for ``make run-cluster``.

Creates the cluster on first use (``initdb`` with a superuser ``switchboard``
trusted on loopback only), then replaces itself with ``postgres`` in the
foreground, so the supervisor's signals reach the server directly (SIGTERM is
PostgreSQL's "smart" shutdown; the supervisor stops the services first).
``initdb`` and ``postgres`` refuse to run as root: as root both run as the
``postgres`` user (Debian's package creates it), and the data directory is
handed to that user. The binaries come from Debian's ``postgresql-15``
(``make tools-postgres``); ``SWITCHBOARD_POSTGRES_BIN`` points elsewhere.

Example::

    $ python -m services.platform.postgres --data-dir var/cluster/postgres --listen 127.0.0.1:55432
    # services: --database-url postgresql://switchboard@127.0.0.1:55432/postgres
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["SUPERUSER", "database_url", "main"]

SUPERUSER = "switchboard"
_DEFAULT_BIN = "/usr/lib/postgresql/15/bin"


def database_url(host: str, port: int) -> str:
    """The URL services use for a server this module started."""
    return f"postgresql://{SUPERUSER}@{host}:{port}/postgres"


def _bin() -> Path:
    return Path(os.environ.get("SWITCHBOARD_POSTGRES_BIN", _DEFAULT_BIN))


def _as_postgres() -> list[str]:
    """As root, run as the ``postgres`` user (setpriv execs: the pid stays the server's)."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]


def _init(data_dir: Path) -> None:
    if (data_dir / "PG_VERSION").exists():
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(data_dir, "postgres", "postgres")
        data_dir.chmod(0o700)
    command = [str(_bin() / "initdb"), "-D", str(data_dir), "-U", SUPERUSER]
    command += ["--auth=trust", "--encoding=UTF8", "--no-instructions"]
    subprocess.run([*_as_postgres(), *command], check=True, stdout=subprocess.DEVNULL)


def main(argv: Sequence[str] | None = None) -> None:
    """Create the cluster if needed, then exec ``postgres`` on ``--listen``."""
    parser = argparse.ArgumentParser(prog="python -m services.platform.postgres")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--listen", required=True, metavar="HOST:PORT")
    ns = parser.parse_args(argv)
    host, _, port = ns.listen.rpartition(":")
    if not (_bin() / "postgres").exists():
        parser.error(f"no PostgreSQL in {_bin()}: run `make tools-postgres`")
    data_dir = ns.data_dir.resolve()
    _init(data_dir)
    server = [str(_bin() / "postgres"), "-D", str(data_dir), "-h", host, "-p", port]
    server += ["-k", str(data_dir), "-c", "max_connections=200"]
    print(f"postgres listening on {host}:{port}", flush=True)
    command = [*_as_postgres(), *server]
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
