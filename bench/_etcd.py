"""The etcd peer: its API stubs, and the etcd command line.

The stubs are the project's one copy of etcd's wire-compatible API subset
(``third_party/protos/etcd/api/...``, generated into ``generated/python/etcd``);
ghz reads the same ``.proto`` files. etcd runs single-node on two free loopback
ports with its data dir on tmpfs when there is one (/dev/shm).

Example::

    pb, pb_grpc = load_stubs()
    argv = etcd_argv(binary, data_dir, client_port=2379, peer_port=2380)
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import ModuleType

from etcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc

from harness import etcd_binary
from registry.store.etcd import prefix_end

__all__ = [
    "ETCD_IMPORTS",
    "ETCD_PROTO",
    "etcd_argv",
    "etcd_binary",
    "etcd_version",
    "load_stubs",
    "prefix_end",
]

ETCD_IMPORTS = Path(__file__).resolve().parents[1] / "third_party" / "protos"
ETCD_PROTO = ETCD_IMPORTS / "etcd" / "api" / "etcdserverpb" / "rpc.proto"


def etcd_version(binary: str) -> str:
    """``etcd --version``'s first line, e.g. ``etcd Version: 3.4.23``."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    return (out.stdout.splitlines() or ["etcd (unknown version)"])[0].strip()


def load_stubs() -> tuple[ModuleType, ModuleType]:
    """etcd's generated ``(messages, grpc stubs)`` modules."""
    return rpc_pb2, rpc_pb2_grpc


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
