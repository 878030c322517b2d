"""An etcd cluster on loopback: start N members on free ports, find the leader,
SIGKILL and restart members, stop everything.

The members run ``etcd`` from PATH (``make tools-etcd`` installs it) with short
Raft timers (heartbeat 50 ms, election 500 ms) so failover tests stay short;
data dirs live on tmpfs when there is one. Readiness is asked of etcd itself
(Maintenance.Status on every member agrees on a leader), never slept for.

Example::

    with EtcdCluster.start(tmp_path, size=3) as cluster:
        endpoints = cluster.endpoints          # "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
        cluster.kill(cluster.leader())
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import grpc
from etcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc

from harness._ports import free_ports
from harness._process import Process, clean_env

__all__ = [
    "ELECTION_TIMEOUT_S",
    "EtcdCluster",
    "Member",
    "Tls",
    "etcd_binary",
]

HEARTBEAT_MS = 50
ELECTION_MS = 500
ELECTION_TIMEOUT_S = ELECTION_MS / 1000
_READY_S = 30.0


def etcd_binary() -> str | None:
    """The etcd server on PATH, or None."""
    return shutil.which("etcd")


@dataclass(frozen=True)
class Tls:
    """Certificates for HTTPS client URLs: the CA, the members' pair, a client's pair."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            self.ca.read_bytes(), self.client_key.read_bytes(), self.client_cert.read_bytes()
        )


@dataclass
class Member:
    """One etcd member: its ports, data dir, log file and process (None while down)."""

    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    process: Process | None = None
    tls: Tls | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def status(self, timeout: float = 1.0) -> rpc_pb2.StatusResponse | None:
        """Maintenance.Status of this member, or None if it does not answer."""
        if self.tls is None:
            channel = grpc.insecure_channel(self.address)
        else:
            channel = grpc.secure_channel(self.address, self.tls.credentials())
        with channel:
            stub = rpc_pb2_grpc.MaintenanceStub(channel)
            try:
                return stub.Status(rpc_pb2.StatusRequest(), timeout=timeout)
            except grpc.RpcError:
                return None


@dataclass
class EtcdCluster:
    """A loopback etcd cluster owned by the test session."""

    binary: str
    members: list[Member]
    work: Path
    _own_work: bool = field(default=False, repr=False)

    @classmethod
    def start(cls, work: Path | None = None, size: int = 3, tls: Tls | None = None) -> EtcdCluster:
        """Start ``size`` members (HTTPS clients with ``tls``) and wait for a leader."""
        binary = etcd_binary()
        if binary is None:
            raise RuntimeError("etcd is not on PATH: run `make tools-etcd`")
        own = work is None
        base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
        work = work or Path(tempfile.mkdtemp(prefix="switchboard-etcd-", dir=base))
        ports = free_ports(2 * size)  # distinct: probed together, not one after another
        members = [
            Member(
                f"m{n}", ports[2 * n], ports[2 * n + 1], work / f"m{n}", work / f"m{n}.log", tls=tls
            )
            for n in range(size)
        ]
        cluster = cls(binary, members, work, own)
        for member in members:
            cluster.restart(member)
        cluster.wait_ready()
        return cluster

    @property
    def endpoints(self) -> str:
        """Every member's client address, comma-separated (the registry's ``--etcd``)."""
        return ",".join(m.address for m in self.members)

    def _argv(self, member: Member) -> list[str]:
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        client = member.client_url
        tls = member.tls
        secure = (
            []
            if tls is None
            else [
                f"--cert-file={tls.server_cert}",
                f"--key-file={tls.server_key}",
                f"--trusted-ca-file={tls.ca}",
                "--client-cert-auth",
            ]
        )
        return [
            self.binary,
            *secure,
            f"--name={member.name}",
            f"--data-dir={member.data_dir}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={member.peer_url}",
            f"--initial-advertise-peer-urls={member.peer_url}",
            f"--initial-cluster={initial}",
            "--initial-cluster-state=new",
            "--initial-cluster-token=switchboard-test",
            f"--heartbeat-interval={HEARTBEAT_MS}",
            f"--election-timeout={ELECTION_MS}",
            "--logger=zap",
            "--log-level=warn",
        ]

    def restart(self, member: Member) -> None:
        """(Re)start a member that is down; its data dir keeps its state."""
        assert member.process is None or not member.process.running
        argv = self._argv(member)
        member.process = Process(
            member.name, lambda _port: argv, env=clean_env(), cwd=self.work,
            log_path=member.log_path,
        ).spawn()  # fmt: skip

    def kill(self, member: Member) -> None:
        """SIGKILL a member and reap it."""
        if member.process is not None:
            member.process.kill()
            member.process.wait_exit_sync(10)
        member.process = None

    def leader(self, limit_s: float = _READY_S) -> Member:
        """The member the running members agree leads (waits, bounded, for an election)."""
        end = time.monotonic() + limit_s
        while time.monotonic() < end:
            found = self._agreed_leader()
            if found is not None:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no etcd leader within {limit_s}s:\n{self.logs()}")

    def _agreed_leader(self) -> Member | None:
        live = [m for m in self.members if m.process is not None]
        statuses = [m.status() for m in live]
        leaders = {s.leader for s in statuses if s is not None}
        if None in statuses or len(leaders) != 1 or 0 in leaders:
            return None
        (leader_id,) = leaders
        for member, status in zip(live, statuses, strict=True):
            if status is not None and status.header.member_id == leader_id:
                return member
        return None

    def wait_ready(self, limit_s: float = _READY_S) -> None:
        """Wait until every running member answers and they agree on a leader."""
        self.leader(limit_s)

    def logs(self) -> str:
        return "\n".join(
            f"--- {m.name}\n{m.log_path.read_text(errors='replace')[-3000:]}"
            for m in self.members
            if m.log_path.exists()
        )

    def stop(self) -> None:
        """Kill every member and remove the data dirs this cluster created."""
        for member in self.members:
            self.kill(member)
        if self._own_work:
            shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
