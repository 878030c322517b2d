"""The interop clients in interop/{go,ts,java}: how to run each and what it must print.

Every client prints ``PASS <check>: <detail>`` per check and ``ALL CHECKS
PASSED (<n>)`` last, and exits 0 only when every check holds.

Example::

    result = CLIENTS["go"].run("127.0.0.1:41234")
    result.returncode, result.stdout
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness import REPO

__all__ = ["CLIENTS", "RUN_TIMEOUT_S", "XDS_CHECKS", "XDS_LANGUAGES", "Client", "run_bounded"]

RUN_TIMEOUT_S = 90.0  # a JVM or tsx start plus a few calls; the clients bound their own waits

# Checks of every client, with a fragment each detail must contain.
FULL_CHECKS = {
    "create-user": "email=interop-",
    "get-user": "every field equals CreateUser's answer",
    "create-user-with-id": "id=",
    "list-users-paged": "page_size=2",
    "not-found": "NOT_FOUND reason=USER_NOT_FOUND ResourceInfo.resource_name=missing-",
    "invalid-argument": "INVALID_ARGUMENT reason=INVALID_ARGUMENT BadRequest user.email:",
    "watch-users": "from revision 0: CREATED ",
}
# In xDS mode (targets xds:///user and xds:///product) one more check goes to the product.
XDS_CHECKS = {**FULL_CHECKS, "list-products": "page_size=1"}
XDS_LANGUAGES = ("go", "ts")


@dataclass(frozen=True)
class Client:
    """One language's client: the toolchain it needs and how to run it."""

    language: str
    tools: tuple[str, ...]
    checks: dict[str, str]
    cwd: Path

    def command(self, user_address: str, *more: str) -> list[str]:
        """The command line that runs the built client against ``user_address`` (and ``more``
        targets: the Go and TS clients take ``xds:///product`` second); ``user_address`` may
        be ``--help``."""
        if self.language == "go":
            return [str(self.cwd / "bin" / "interop-go"), user_address, *more]
        if self.language == "ts":
            tsx = str(self.cwd / "node_modules" / ".bin" / "tsx")
            return [tsx, "src/main.ts", user_address, *more]
        classpath = (self.cwd / "target" / "classpath.txt").read_text().strip()
        main = "dev.switchboard.interop.Main"
        return ["java", "-cp", f"target/classes{os.pathsep}{classpath}", main, user_address]

    def run(
        self, user_address: str, *more: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the client (bounded by RUN_TIMEOUT_S), with ``env`` added to the environment."""
        return run_bounded(self.command(user_address, *more), self.cwd, env)


CLIENTS = {
    "go": Client("go", ("go",), FULL_CHECKS, REPO / "interop" / "go"),
    "ts": Client("ts", ("node", "npm"), FULL_CHECKS, REPO / "interop" / "ts"),
    "java": Client("java", ("java", "mvn"), FULL_CHECKS, REPO / "interop" / "java"),
}


def run_bounded(
    command: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in its own process group; kill the whole group on timeout or error.

    (``subprocess.run`` kills only the direct child: tsx, for one, starts a node of its own.)
    """
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env={**os.environ, **env} if env else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)
