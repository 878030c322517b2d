"""The test harness: real processes, in-process servers and the platform, for tests and bench.

One place for what ``tests/`` and ``bench/`` both need to run Switchboard:

- :class:`Launcher` / :class:`Process` start ``python -m <module> --listen 127.0.0.1:0``
  (or any command), read the ``<name> listening on HOST:PORT`` line the server
  prints (:func:`parse_listening`), signal, stop (SIGTERM, then SIGKILL, bounded)
  and reap; from async code (``await p.stop()``) or sync code (``p.stop_sync()``).
- :func:`start_server` / :func:`serving` run a gRPC server inside the test process
  (the production ``create_server``, or a bare ``grpc.aio`` one for a foreign API).
- :class:`EtcdCluster` runs an etcd cluster on loopback (members killed and restarted).
- :class:`PostgresServer` runs a throw-away PostgreSQL (:func:`shared_postgres`: one per session).
- :func:`running_platform` runs ``switchboard run`` (the supervisor and the
  platform file, as ``make run`` does) on free ports.

Layering (ARCHITECTURE.md): the harness may import the runtime, the registry,
the services and generated code; ``tests/`` and ``bench/`` import it; it never
imports them.

Example::

    async with Launcher(tmp_path) as launch:
        registry = await launch.start("registry")
        print(registry.address, registry.listening)
"""

from harness._etcd import ELECTION_TIMEOUT_S, EtcdCluster, Member, Tls, etcd_binary
from harness._listening import Listening, parse_listening
from harness._platform import (
    SWITCHBOARD,
    TIMINGS,
    UP_LINE,
    Platform,
    Ports,
    platform_ports,
    running_platform,
    start_platform,
)
from harness._ports import free_port, free_ports
from harness._postgres import PG_BIN, PostgresServer, shared_postgres
from harness._process import (
    PYTHON,
    REPO,
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    HarnessError,
    Launcher,
    Process,
    StartProcess,
    clean_env,
    forget_group,
    track_group,
)
from harness._server import (
    InProcessServer,
    serving,
    serving_plain,
    start_plain_server,
    start_server,
)
from harness._stats import Memory, open_fds, read_cpu_ticks, read_memory

__all__ = [
    "ELECTION_TIMEOUT_S",
    "PG_BIN",
    "PYTHON",
    "REPO",
    "START_TIMEOUT_S",
    "STOP_TIMEOUT_S",
    "SWITCHBOARD",
    "TIMINGS",
    "UP_LINE",
    "EtcdCluster",
    "HarnessError",
    "InProcessServer",
    "Launcher",
    "Listening",
    "Member",
    "Memory",
    "Platform",
    "Ports",
    "PostgresServer",
    "Process",
    "StartProcess",
    "Tls",
    "clean_env",
    "etcd_binary",
    "forget_group",
    "free_port",
    "free_ports",
    "open_fds",
    "parse_listening",
    "platform_ports",
    "read_cpu_ticks",
    "read_memory",
    "running_platform",
    "serving",
    "serving_plain",
    "shared_postgres",
    "start_plain_server",
    "start_platform",
    "start_server",
    "track_group",
]
