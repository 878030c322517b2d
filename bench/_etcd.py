"""The etcd peer: compile its wire-compatible proto subset, and the etcd command line.

``bench/protos/etcd_v3_subset.proto`` is compiled with grpc_tools into a temp
dir at bench time (never into generated/); :func:`load_stubs` imports the
result from there. etcd runs single-node on two free loopback ports with its
data dir on tmpfs when there is one (/dev/shm).

Example::

    stubs_dir = compile_stubs(work_dir)
    pb, pb_grpc = load_stubs(stubs_dir)
    argv = etcd_argv(data_dir, client_port=2379, peer_port=2380)
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

__all__ = [
    "ETCD_PROTO",
    "compile_stubs",
    "etcd_argv",
    "etcd_binary",
    "etcd_version",
    "load_stubs",
    "prefix_end",
]

PROTO_DIR = Path(__file__).resolve().parent / "protos"
ETCD_PROTO = PROTO_DIR / "etcd_v3_subset.proto"
_MODULE = "etcd_v3_subset"


def etcd_binary() -> str | None:
    """The etcd server on PATH, or None."""
    return shutil.which("etcd")


def etcd_version(binary: str) -> str:
    """``etcd --version``'s first line, e.g. ``etcd Version: 3.4.23``."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    return (out.stdout.splitlines() or ["etcd (unknown version)"])[0].strip()


def compile_stubs(out_dir: Path) -> Path:
    """Generate the Python messages and stubs of the subset into ``out_dir``; return it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            ETCD_PROTO.name,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return out_dir


def load_stubs(stubs_dir: Path) -> tuple[ModuleType, ModuleType]:
    """Import the generated ``(messages, grpc stubs)`` modules from ``stubs_dir``."""
    if str(stubs_dir) not in sys.path:
        sys.path.insert(0, str(stubs_dir))
    return importlib.import_module(f"{_MODULE}_pb2"), importlib.import_module(f"{_MODULE}_pb2_grpc")


def etcd_argv(binary: str, data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    """A single-member etcd on loopback (info logs: it says when it is ready to serve)."""
    client = f"http://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    return [
        binary,
        "--name=bench",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=bench={peer}",
        "--initial-cluster-state=new",
        "--logger=zap",
        "--log-level=info",
    ]


def prefix_end(prefix: bytes) -> bytes:
    """The range end that covers every key starting with ``prefix`` (etcd's convention).

    Example: ``prefix_end(b"/a/") == b"/a0"``.
    """
    end = bytearray(prefix)
    for index in range(len(end) - 1, -1, -1):
        if end[index] < 0xFF:
            end[index] += 1
            return bytes(end[: index + 1])
    return b"\0"
