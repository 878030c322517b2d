"""The processes under test and the data they hold: start, seed, remember.

Servers run on the server core (``taskset``), each in its own process group,
logging to ``bench/results/logs/``. The Python load generator runs as a child of
the bench on the load core; :func:`loadgen` feeds it one JSON spec and reads one
JSON result, with a time bound.

Example::

    async with Procs(logs, cpus) as procs:
        stack = Stack(config, procs, work, logs)
        await start_registry(stack)
        await start_user(stack)
        await seed(stack)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._config import REPO, BenchConfig
from bench._etcd import etcd_argv, etcd_binary
from bench._procs import Memory, Proc, Procs, forget_group, free_port, track_group

__all__ = [
    "LOADGEN_TIMEOUT_S",
    "Stack",
    "loadgen",
    "server_env",
    "start_echo",
    "start_etcd",
    "start_product",
    "start_registry",
    "start_registry_etcd",
    "start_user",
]

LOADGEN_TIMEOUT_S = 240.0
SETTLE_S = 0.5
ETCD_READY = "serving client traffic"  # logged once the server is ready (zap logger)


@dataclass
class Stack:
    """Everything the cases need: processes, addresses, seeded ids, and what is missing."""

    config: BenchConfig
    procs: Procs
    work: Path
    logs: Path
    ghz: Path | None = None
    registry: Proc | None = None
    registry_etcd: Proc | None = None
    etcd: Proc | None = None
    echo_aio: Proc | None = None
    echo_sync: Proc | None = None
    users: list[Proc] = field(default_factory=list)
    product: Proc | None = None
    user_ids: list[str] = field(default_factory=list)
    sample_user: bytes = b""
    seller_id: str = ""
    product_id: str = ""
    heartbeat_lease: str = ""
    registry_etcd_lease: str = ""
    etcd_lease: int = 0
    idle: dict[str, Memory] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def user_data(self) -> Path:
        """The data dir every user-service instance shares (one SQLite file)."""
        return self.work / "user-data"

    @property
    def product_data(self) -> Path:
        """The product service's data dir."""
        return self.work / "product-data"

    def user_pids(self) -> list[int]:
        """Pids of the running user-service instances."""
        return [proc.pid for proc in self.users if proc.running]


def server_env(**extra: str) -> dict[str, str]:
    """The bench's environment without any SWITCHBOARD_* setting of the caller's, plus ``extra``.

    Example: ``server_env(SWITCHBOARD_REGISTRY="127.0.0.1:50051")``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env | extra


async def _idle(stack: Stack, name: str, proc: Proc) -> Proc:
    """Note a freshly started server's idle RSS, after a moment to settle."""
    await asyncio.sleep(SETTLE_S)
    stack.idle[name] = proc.memory()
    return proc


async def start_registry(stack: Stack) -> Proc:
    """The registry under test (also the one the services register with)."""
    argv = [sys.executable, "-m", "registry", "--listen", "127.0.0.1:0"]
    stack.registry = await stack.procs.start("registry", argv, env=server_env())
    return await _idle(stack, "registry", stack.registry)


async def start_registry_etcd(stack: Stack) -> Proc:
    """A registry keeping its state in the bench's etcd (``--etcd``), beside the in-memory one."""
    assert stack.etcd is not None
    argv = [sys.executable, "-m", "registry", "--listen", "127.0.0.1:0"]
    argv += ["--etcd", stack.etcd.address, "--etcd-prefix", "/bench/registry/"]
    stack.registry_etcd = await stack.procs.start("registry-etcd", argv, env=server_env())
    return await _idle(stack, "registry-etcd", stack.registry_etcd)


async def start_user(stack: Stack) -> Proc:
    """One more user-service instance on the shared data dir, registered with the registry."""
    assert stack.registry is not None
    stack.user_data.mkdir(exist_ok=True)
    argv = [sys.executable, "-m", "services.user", "--listen", "127.0.0.1:0"]
    argv += ["--data-dir", str(stack.user_data), "--registry", stack.registry.address]
    proc = await stack.procs.start(f"user{len(stack.users) + 1}", argv, env=server_env())
    stack.users.append(proc)
    if len(stack.users) == 1:
        await _idle(stack, "user", proc)
    return proc


async def start_product(stack: Stack) -> Proc:
    """The product service, finding the user service through the registry."""
    assert stack.registry is not None
    stack.product_data.mkdir(exist_ok=True)
    argv = [sys.executable, "-m", "services.product", "--listen", "127.0.0.1:0"]
    argv += ["--data-dir", str(stack.product_data), "--registry", stack.registry.address]
    stack.product = await stack.procs.start("product", argv, env=server_env())
    return await _idle(stack, "product", stack.product)


async def start_echo(stack: Stack, kind: str) -> Proc:
    """A raw echo server answering with the seeded sample user (same size as a real one)."""
    argv = [sys.executable, "-m", "bench._echo", "--kind", kind, "--listen", "127.0.0.1:0"]
    if stack.sample_user:
        user_file = stack.work / "sample-user.bin"
        user_file.write_bytes(stack.sample_user)
        argv += ["--user-file", str(user_file)]
    proc = await stack.procs.start(f"echo-{kind}", argv, env=server_env())
    setattr(stack, f"echo_{kind}", proc)
    return await _idle(stack, f"echo-{kind}", proc)


def _tmpfs_dir(prefix: str) -> Path:
    """A fresh directory on /dev/shm when it exists (etcd's fsyncs then cost what RAM costs)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


async def start_etcd(stack: Stack, name: str = "etcd") -> Proc | None:
    """A single-member etcd on loopback (None, and a note, when it is not installed)."""
    binary = etcd_binary()
    if binary is None:
        stack.missing["etcd"] = "etcd is not installed (run `make tools-etcd`)"
        return None
    data = _tmpfs_dir("switchboard-bench-etcd-")
    client_port = free_port()
    argv = etcd_argv(binary, data / "member", client_port, free_port())
    proc = await stack.procs.start(name, argv, env=server_env(), listening=False)
    stack.procs.on_stop(proc, lambda: _remove_tree(data))
    await proc.wait_output(ETCD_READY)
    proc.address = f"127.0.0.1:{client_port}"
    return await _idle(stack, name, proc)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


async def loadgen(stack: Stack, spec: dict[str, Any], timeout_s: float = LOADGEN_TIMEOUT_S) -> Any:
    """Run ``python -m bench._loadgen`` with ``spec``; its JSON result (errors raise).

    It inherits the bench's core (the load core) and runs in its own process group.
    """
    log_path = stack.logs / f"loadgen-{spec['scenario']}.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench._loadgen",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            cwd=REPO,
            env=server_env(),
            start_new_session=True,
        )
    track_group(process.pid)
    try:
        out, _ = await asyncio.wait_for(process.communicate(json.dumps(spec).encode()), timeout_s)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        forget_group(process.pid)
    if process.returncode != 0:
        lines = [line for line in log_path.read_text(errors="replace").splitlines() if line]
        last = lines[-1] if lines else f"exit status {process.returncode}"
        raise RuntimeError(f"load generator {spec['scenario']}: {last[:300]} (see {log_path})")
    return json.loads(out)
