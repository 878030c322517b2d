"""Prometheus metrics of every Switchboard process, named as the ecosystem knows them.

Server and client RPC metrics use go-grpc-prometheus's names and labels
(``grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}``),
so existing dashboards and alerts work unchanged. Everything lives in
prometheus_client's default registry, next to its process metrics; the HTTP
side port serves it at ``/metrics`` (see :func:`exposition`).

The hot path never looks a label set up: :class:`ServerMethodMetrics` and
:class:`ClientMethodMetrics` are built once per method and hold the label
children; a status code's child is made on its first use.

Example::

    m = ServerMethodMetrics.of("/greeter.v1.Greeter/SayHello", "unary")
    m.started.inc(); m.received.inc()
    m.handled(grpc.StatusCode.OK, 0.0012)

A component with state to report at scrape time (the registry's instance
counts) adds a coroutine with :func:`add_scrape_hook`; ``/metrics`` awaits
every hook before rendering.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
import prometheus_client
from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "CONTENT_TYPE",
    "ClientMethodMetrics",
    "ServerMethodMetrics",
    "add_scrape_hook",
    "exposition",
    "split_method",
]

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST

# ``*_created`` series double the exposition and no dashboard reads them.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

# go-grpc-prometheus's default buckets stop at 10 s; ours start lower because a
# local call takes well under a millisecond.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_RPC = ("grpc_type", "grpc_service", "grpc_method")

SERVER_STARTED = Counter("grpc_server_started_total", "RPCs started on the server.", _RPC)
SERVER_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, regardless of success or failure.",
    (*_RPC, "grpc_code"),
)
SERVER_MSG_RECEIVED = Counter(
    "grpc_server_msg_received_total", "RPC stream messages received on the server.", _RPC
)
SERVER_MSG_SENT = Counter(
    "grpc_server_msg_sent_total", "gRPC stream messages sent by the server.", _RPC
)
SERVER_HANDLING = Histogram(
    "grpc_server_handling_seconds",
    "Response latency (seconds) of gRPC that had been application-level handled by the server.",
    _RPC,
    buckets=_BUCKETS,
)

CLIENT_STARTED = Counter(
    "grpc_client_started_total",
    "RPCs started on the client (one per call, retries included).",
    _RPC,
)
CLIENT_HANDLED = Counter(
    "grpc_client_handled_total",
    "RPCs completed by the client, regardless of success or failure.",
    (*_RPC, "grpc_code"),
)
CLIENT_HANDLING = Histogram(
    "grpc_client_handling_seconds",
    "Latency (seconds) of a call as the caller sees it, retries and backoff included.",
    _RPC,
    buckets=_BUCKETS,
)
CLIENT_ATTEMPTS = Counter(
    "switchboard_client_attempts_total",
    "Attempts made by the Switchboard client, by the attempt's status code.",
    ("grpc_service", "grpc_method", "grpc_code"),
)
CLIENT_RETRIES = Counter(
    "switchboard_client_retries_total",
    "Retries made by the Switchboard client, by the status code that caused them.",
    ("grpc_service", "grpc_method", "grpc_code"),
)
DISCOVERY_AGE = Gauge(
    "switchboard_client_discovery_cache_age_seconds",
    "Seconds since the registry last confirmed a service's address list.",
    ("service",),
)

STORAGE_COMMIT_SECONDS = Histogram(
    "switchboard_storage_commit_seconds",
    "Write transactions: queue, run and commit (seconds).",
    ("database",),
    buckets=_BUCKETS,
)
STORAGE_BATCH_WRITES = Histogram(
    "switchboard_storage_commit_batch_writes",
    "Writes committed together in one transaction (group commit: one fsync for all).",
    ("database",),
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
STORAGE_QUERY_SECONDS = Histogram(
    "switchboard_storage_query_seconds",
    "Read snapshots run off the event loop (seconds).",
    ("database",),
    buckets=_BUCKETS,
)
STORAGE_REVISION = Gauge(
    "switchboard_storage_revision", "The change log's last revision written.", ("database",)
)
STORAGE_WATCHERS = Gauge("switchboard_storage_watch_subscribers", "Open Watch streams.")
STORAGE_REPLAYS = Counter(
    "switchboard_storage_idempotent_replays_total",
    "Mutations answered from a stored response (a retry with the same request_id).",
)

_scrape_hooks: list[Callable[[], Awaitable[None]]] = []


def split_method(path: str) -> tuple[str, str]:
    """``"/pkg.Service/Method"`` → ``("pkg.Service", "Method")``.

    Example: ``split_method("/a.v1.S/Get") == ("a.v1.S", "Get")``.
    """
    service, _, method = path.lstrip("/").rpartition("/")
    return service or "unknown", method


def _count(
    children: dict[grpc.StatusCode, Counter],
    family: Counter,
    labels: tuple[str, ...],
    code: grpc.StatusCode,
) -> None:
    """Increment ``family{labels..., code}``, its child cached in ``children`` by code."""
    child = children.get(code)
    if child is None:
        child = children[code] = family.labels(*labels, code.name)
    child.inc()


class ServerMethodMetrics:
    """The server metrics' label children of one method (cached by :meth:`of`)."""

    __slots__ = ("_handled", "_labels", "handling", "received", "sent", "started")
    _cache: dict[tuple[str, str], ServerMethodMetrics] = {}

    def __init__(self, path: str, grpc_type: str) -> None:
        self._labels = (grpc_type, *split_method(path))
        self.started = SERVER_STARTED.labels(*self._labels)
        self.received = SERVER_MSG_RECEIVED.labels(*self._labels)
        self.sent = SERVER_MSG_SENT.labels(*self._labels)
        self.handling = SERVER_HANDLING.labels(*self._labels)
        self._handled: dict[grpc.StatusCode, Counter] = {}

    @classmethod
    def of(cls, path: str, grpc_type: str) -> ServerMethodMetrics:
        """The (cached) metrics of method ``path`` of shape ``grpc_type`` (``unary``, ...)."""
        key = (path, grpc_type)
        if key not in cls._cache:
            cls._cache[key] = cls(path, grpc_type)
        return cls._cache[key]

    def handled(self, code: grpc.StatusCode, seconds: float) -> None:
        """Count one finished call with its final code and duration."""
        _count(self._handled, SERVER_HANDLED, self._labels, code)
        self.handling.observe(seconds)


class ClientMethodMetrics:
    """The client metrics' label children of one method (cached by :meth:`of`)."""

    __slots__ = ("_attempts", "_handled", "_labels", "_retries", "handling", "started")
    _cache: dict[tuple[str, str], ClientMethodMetrics] = {}

    def __init__(self, path: str, grpc_type: str) -> None:
        self._labels = (grpc_type, *split_method(path))
        self.started = CLIENT_STARTED.labels(*self._labels)
        self.handling = CLIENT_HANDLING.labels(*self._labels)
        self._handled: dict[grpc.StatusCode, Counter] = {}
        self._attempts: dict[grpc.StatusCode, Counter] = {}
        self._retries: dict[grpc.StatusCode, Counter] = {}

    @classmethod
    def of(cls, path: str, grpc_type: str = "unary") -> ClientMethodMetrics:
        """The (cached) client metrics of method ``path``."""
        key = (path, grpc_type)
        if key not in cls._cache:
            cls._cache[key] = cls(path, grpc_type)
        return cls._cache[key]

    def handled(self, code: grpc.StatusCode, seconds: float) -> None:
        """Count one finished call (all its attempts) with its final code and duration."""
        _count(self._handled, CLIENT_HANDLED, self._labels, code)
        self.handling.observe(seconds)

    def attempt(self, code: grpc.StatusCode) -> None:
        """Count one attempt that ended with ``code`` (labels: service, method, code)."""
        _count(self._attempts, CLIENT_ATTEMPTS, self._labels[1:], code)

    def retry(self, code: grpc.StatusCode) -> None:
        """Count one retry caused by an attempt that failed with ``code``."""
        _count(self._retries, CLIENT_RETRIES, self._labels[1:], code)


def add_scrape_hook(hook: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    """Await ``hook()`` before every ``/metrics`` render; returns a function removing it.

    Example: ``remove = add_scrape_hook(refresh_instance_gauges)``.
    """
    _scrape_hooks.append(hook)
    return lambda: _scrape_hooks.remove(hook) if hook in _scrape_hooks else None


async def exposition() -> bytes:
    """The Prometheus text exposition of this process, after running the scrape hooks."""
    for hook in tuple(_scrape_hooks):
        await hook()
    return prometheus_client.generate_latest(prometheus_client.REGISTRY)
