"""Every case the bench runs, declared up front, so none can silently go missing.

Each case says what it measures, which generator drives it and which server's
CPU it counts. A case that cannot run (no etcd, a service that does not start)
still appears in the report, with the reason.

Example::

    info = CASES["user.get.client"]
    info.title, info.generator, info.what
"""

from __future__ import annotations

from dataclasses import dataclass

from bench._model import CaseResult

__all__ = ["CASES", "CaseInfo"]


@dataclass(frozen=True)
class CaseInfo:
    """Static description of one case."""

    key: str
    title: str
    group: str
    generator: str
    server: str
    what: str
    unit: str = "calls/s"

    def result(self) -> CaseResult:
        """An empty result for this case, to be filled (or given an error)."""
        return CaseResult(
            key=self.key,
            title=self.title,
            group=self.group,
            generator=self.generator,
            what=self.what,
            unit=self.unit,
            server=self.server,
        )


_ALL = (
    # --- baselines: the physical limit of a Python gRPC stack here ---------------------
    CaseInfo(
        "echo.aio.ghz",
        "Echo, raw grpc.aio",
        "baseline",
        "ghz",
        "echo-aio",
        "GetUser on a bare grpc.aio server answering a pre-built User (no interceptors, "
        "no storage): the limit of the stack.",
    ),
    CaseInfo(
        "echo.sync.ghz",
        "Echo, raw grpcio sync (ThreadPool)",
        "baseline",
        "ghz",
        "echo-sync",
        "The same echo on the classic grpc.server with a 32-thread pool.",
    ),
    CaseInfo(
        "echo.aio.py",
        "Echo, raw grpc.aio, Python generator",
        "baseline",
        "python",
        "echo-aio",
        "The aio echo driven by the Python generator's raw stub: the yardstick for the "
        "Switchboard client, which only the Python generator can drive.",
    ),
    # --- user service ------------------------------------------------------------------
    CaseInfo(
        "user.get.ghz",
        "GetUser",
        "user",
        "ghz",
        "user",
        "GetUser of seeded users on the user service (interceptors, SQLite read).",
    ),
    CaseInfo(
        "user.get.stub",
        "GetUser, raw grpcio stub",
        "user",
        "python",
        "user",
        "GetUser through a generated stub on a plain channel to the one instance.",
    ),
    CaseInfo(
        "user.get.client",
        "GetUser via Switchboard client",
        "user",
        "python",
        "user+registry",
        "GetUser through services.runtime's Client (discovery through the registry, "
        "round_robin, deadline, retry policy), same generator and workers as the raw stub.",
    ),
    CaseInfo(
        "user.create.ghz",
        "CreateUser",
        "user",
        "ghz",
        "user",
        "CreateUser with a fresh email and request_id per call (SQLite write + change log "
        "+ idempotency record, one transaction).",
    ),
    CaseInfo(
        "user.list50.ghz",
        "ListUsers(50)",
        "user",
        "ghz",
        "user",
        "The first page of 50 users.",
    ),
    CaseInfo(
        "user.get.paced",
        "GetUser at a fixed rate, alone",
        "user",
        "ghz",
        "user",
        "GetUser at a fixed offered rate; its latency is the reference for the next row.",
    ),
    CaseInfo(
        "user.get.paced_list",
        "GetUser at a fixed rate, during ListUsers(1000)",
        "user",
        "ghz",
        "user",
        "The same GetUser load while another ghz runs ListUsers(page_size=1000) back to back: "
        "do point reads keep flowing while a large List runs?",
    ),
    # --- product service -----------------------------------------------------------------
    CaseInfo(
        "product.create.ghz",
        "CreateProduct (seller checked)",
        "product",
        "ghz",
        "product+user",
        "CreateProduct with a fresh SKU; the product service checks the seller in its "
        "projection of the user log (a GetUser through discovery on a miss; the bench's "
        "seller is projected, so no call) before writing.",
    ),
    CaseInfo(
        "product.reserve.ghz",
        "ReserveStock, one hot product",
        "product",
        "ghz",
        "product",
        "ReserveStock of 1 unit, every worker on the same product (contention on one row).",
    ),
    # --- registry and its etcd peer --------------------------------------------------------
    CaseInfo(
        "registry.heartbeat.ghz",
        "Registry Heartbeat (unary)",
        "registry",
        "ghz",
        "registry",
        "Unary Heartbeat renewing one lease.",
    ),
    CaseInfo(
        "etcd.keepalive_once.ghz",
        "etcd LeaseKeepAlive, 1 renewal per stream",
        "etcd",
        "ghz",
        "etcd",
        "etcd has no unary renew: a LeaseKeepAlive stream carrying one renewal is its "
        "closest equivalent of Heartbeat.",
    ),
    CaseInfo(
        "registry.keepalive.py",
        "Registry KeepAlive stream",
        "registry",
        "python",
        "registry",
        "Renewals over 32 KeepAlive streams (one lease per stream, one renewal in flight "
        "each), all from one Python process: this shape can be bound by the generator "
        "(compare etcd's row).",
        unit="renewals/s",
    ),
    CaseInfo(
        "etcd.keepalive.py",
        "etcd LeaseKeepAlive stream",
        "etcd",
        "python",
        "etcd",
        "The same renewal shape on etcd's LeaseKeepAlive.",
        unit="renewals/s",
    ),
    CaseInfo(
        "registry.keepalive.ghz",
        "Registry KeepAlive stream, pipelined (ghz)",
        "registry",
        "ghz",
        "registry",
        "ghz sends 100 renewals of one lease on each KeepAlive stream without waiting, "
        "32 streams at a time: the registry's renewal capacity with the generator out of "
        "the way. Latency columns are per stream of 100 renewals.",
        unit="renewals/s",
    ),
    CaseInfo(
        "etcd.keepalive.ghz",
        "etcd LeaseKeepAlive stream, pipelined (ghz)",
        "etcd",
        "ghz",
        "etcd",
        "The same: 100 renewals per LeaseKeepAlive stream. Latency per stream.",
        unit="renewals/s",
    ),
    CaseInfo(
        "registry.resolve100.ghz",
        "Registry Resolve (100 instances)",
        "registry",
        "ghz",
        "registry",
        "Resolve of a service with 100 live instances.",
    ),
    CaseInfo(
        "etcd.range100.ghz",
        "etcd Range (100 keys)",
        "etcd",
        "ghz",
        "etcd",
        "A serializable prefix Range over 100 keys holding the same serialized instances.",
    ),
    CaseInfo(
        "registry.watch1000.py",
        "Registry Watch fan-out to 1,000",
        "registry",
        "python",
        "registry",
        "1,000 Watch streams on one service (10 connections); one Register at a time; "
        "latency from sending the change to each watcher reading it. One Python process "
        "reads all 1,000 streams, so its own reading time is in the figure (etcd's too).",
        unit="deliveries/s",
    ),
    CaseInfo(
        "registry.xds1000.py",
        "Registry xDS (EDS) push to 1,000",
        "registry",
        "python",
        "registry",
        "1,000 ADS streams subscribed to one ClusterLoadAssignment, each response ACKed as a "
        "gRPC client does; one Register at a time; latency from sending the change to each "
        "subscriber reading the new endpoints. Same reader process as the Watch case.",
        unit="deliveries/s",
    ),
    CaseInfo(
        "etcd.watch1000.py",
        "etcd Watch fan-out to 1,000",
        "etcd",
        "python",
        "etcd",
        "1,000 etcd Watch streams on one prefix; one Put at a time; same measurement.",
        unit="deliveries/s",
    ),
    CaseInfo(
        "etcd.range100_linear.ghz",
        "etcd Range (100 keys), linearizable",
        "etcd",
        "ghz",
        "etcd",
        "The same Range as a linearizable read (a quorum round per read): what the "
        "etcd-backed registry's Resolve does, so its ratio compares the same work.",
    ),
    # --- the registry on etcd (--etcd): same calls, the state in the etcd above ----------------
    CaseInfo(
        "registry_etcd.heartbeat.ghz",
        "Registry on etcd: Heartbeat (unary)",
        "registry_etcd",
        "ghz",
        "registry+etcd",
        "Unary Heartbeat on a registry started with --etcd (one etcd LeaseKeepAlive per "
        "call, on the registry's shared stream). CPU is the registry's and etcd's.",
    ),
    CaseInfo(
        "registry_etcd.keepalive.py",
        "Registry on etcd: KeepAlive stream",
        "registry_etcd",
        "python",
        "registry+etcd",
        "registry.keepalive.py's shape on the etcd-backed registry.",
        unit="renewals/s",
    ),
    CaseInfo(
        "registry_etcd.keepalive.ghz",
        "Registry on etcd: KeepAlive stream, pipelined (ghz)",
        "registry_etcd",
        "ghz",
        "registry+etcd",
        "registry.keepalive.ghz's shape on the etcd-backed registry.",
        unit="renewals/s",
    ),
    CaseInfo(
        "registry_etcd.resolve100.ghz",
        "Registry on etcd: Resolve (100 instances)",
        "registry_etcd",
        "ghz",
        "registry+etcd",
        "Resolve of 100 instances: one linearizable etcd Range per call, parsed into the answer.",
    ),
    CaseInfo(
        "registry_etcd.watch1000.py",
        "Registry on etcd: Watch fan-out to 1,000",
        "registry_etcd",
        "python",
        "registry+etcd",
        "registry.watch1000.py on the etcd-backed registry: each registry watch is an etcd "
        "watch, so a change goes etcd -> registry -> watcher.",
        unit="deliveries/s",
    ),
    # --- scaling and failover ----------------------------------------------------------------
    *(
        CaseInfo(
            f"scale.user.{n}",
            f"GetUser via client, {n} instance{'s' if n > 1 else ''}",
            "scaling",
            "python",
            "users+registry",
            f"GetUser through the Switchboard client balancing over {n} user-service "
            "instance(s), all on the server core; the client is given their addresses, so the "
            "three sizes run in the same interleaved rounds.",
        )
        for n in (1, 2, 3)
    ),
    CaseInfo(
        "failover.kill1of3",
        "Failover: SIGKILL 1 of 3 under load",
        "failover",
        "python",
        "users+registry",
        "GetUser via the client over 3 instances; one is SIGKILLed a third of the way in. "
        "Failed calls, and the latency around the kill.",
    ),
    # --- memory --------------------------------------------------------------------------------
    CaseInfo(
        "memory.registry",
        "Registry RSS, filled with instances",
        "memory",
        "python",
        "registry",
        "A fresh registry filled to 1k, 10k and 50k instances (10k in quick mode; services of "
        "1,000 instances, one lease each); VmRSS after each step. Rate: registrations/s "
        "while filling.",
        unit="registrations/s",
    ),
    CaseInfo(
        "memory.etcd",
        "etcd RSS, filled with instances",
        "memory",
        "python",
        "etcd",
        "A fresh etcd filled the same way (a lease and a key per instance).",
        unit="registrations/s",
    ),
)

CASES: dict[str, CaseInfo] = {info.key: info for info in _ALL}
