"""Run the platform file's processes in the foreground: ``switchboard run`` (``make run``).

Processes start level by level (a process starts once everything in its
``after`` list is healthy and, for a service, registered); each child's output
is prefixed with its name. A child that fails on its own (a non-zero exit
code or a signal) is restarted with exponential backoff, like systemd's
``Restart=on-failure`` (one that exits 0 stays stopped); a child that
crashes :data:`CRASH_LIMIT` times within :data:`CRASH_WINDOW_S` seconds is
crash-looping, and then everything stops (exit 1). Ctrl-C, SIGTERM or SIGHUP
stop the processes in the reverse order (services deregister while the
registry still runs) and exit 0.

Why not honcho/foreman: they signal every child at once (the registry may exit
before the services deregister), cannot wait for gRPC health before declaring
the platform up, and neither restarts a crashed child.

Example::

    $ switchboard run                    # or: make run
    registry| registry listening on 127.0.0.1:50051
    ...
    switchboard is up in 0.9 s: registry 127.0.0.1:50051, user 127.0.0.1:50052, ...
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import (  # type: ignore[import-untyped, unused-ignore]
    health_pb2,
    health_pb2_grpc,
)

from services.platform._platform_file import Platform, Process, port_variable
from services.platform._ports import busy_ports
from services.platform._tls import DevPki, TlsError, development_pki
from services.runtime import ConfigError
from services.runtime.auth import DevAuth, dev_auth
from switchboard.registry.v1 import registry_service_pb2, registry_service_pb2_grpc

__all__ = [
    "CRASH_LIMIT",
    "CRASH_WINDOW_S",
    "Supervisor",
    "SupervisorError",
    "check_ports_free",
    "restart_delay",
    "run_platform",
]

CRASH_LIMIT = 5
"""This many crashes of one child within :data:`CRASH_WINDOW_S` is a crash loop: stop all."""
CRASH_WINDOW_S = 60.0
_BACKOFF_FIRST_S = 0.1  # systemd's RestartSec default
_BACKOFF_CAP_S = 10.0
_STOP_TIMEOUT_S = 20.0
_HEALTH_TIMEOUT_S = 15.0
# The first health checks run before the child listens; gRPC's default reconnect backoff
# (1 s, growing) would then delay "up" by about a second per child.
_HEALTH_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 200),
)


OPERATOR = "operator"  # the certificate the supervisor and the banner's grpcurl use (TLS=1)


class SupervisorError(Exception):
    """A condition that stops ``switchboard run`` with a one-line message and exit code 2."""


def restart_delay(recent_crashes: int) -> float:
    """Seconds to wait before restarting a child that crashed ``recent_crashes`` times lately.

    Example: ``[restart_delay(n) for n in (1, 2, 3)] == [0.1, 0.2, 0.4]`` (capped at 10 s).
    """
    return float(min(_BACKOFF_CAP_S, _BACKOFF_FIRST_S * 2 ** max(0, recent_crashes - 1)))


def check_ports_free(platform: Platform) -> None:
    """Raise one :class:`SupervisorError` naming every busy port, and how to choose others."""
    busy = busy_ports(platform.host, {p.name: p.port for p in platform.processes})
    if not busy:
        return
    ports = ", ".join(f"{b.port} ({b.name})" for b in busy)
    moves = " ".join(f"{port_variable(b.name)}={b.port + 100}" for b in busy)
    raise SupervisorError(
        f"busy on {platform.host}: {ports} ({busy[0].reason}). Is Switchboard already running? "
        f"Stop it, or run a second one elsewhere: make run {moves} DATA_DIR=./var2"
    )


@dataclass
class _Child:
    """A process of the platform file and its current OS process."""

    spec: Process
    proc: asyncio.subprocess.Process | None = None
    crashes: deque[float] = field(default_factory=deque)

    def record_crash(self, now: float) -> int:
        """Record a crash at ``now``; return the crashes within the window."""
        self.crashes.append(now)
        while self.crashes and self.crashes[0] < now - CRASH_WINDOW_S:
            self.crashes.popleft()
        return len(self.crashes)


class Supervisor:
    """Starts, watches, restarts and stops the children; see the module docstring."""

    def __init__(
        self, platform: Platform, auth: DevAuth | None = None, pki: DevPki | None = None
    ) -> None:
        self._platform = platform
        self._auth = auth
        self._pki = pki
        self._children = {p.name: _Child(p) for p in platform.processes}
        self._tasks: set[asyncio.Task[None]] = set()
        self._restarts: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._crashed: asyncio.Queue[tuple[str, int]] = asyncio.Queue()

    async def start(self) -> None:
        """Start every level of processes, each once the previous level is up."""
        for level in self._platform.levels():
            await asyncio.gather(*(self._start(p) for p in level))

    async def _start(self, spec: Process) -> None:
        await self._spawn(spec)
        await self._wait_up(spec)

    async def _spawn(self, spec: Process) -> None:
        p = self._platform
        proc = await asyncio.create_subprocess_exec(
            *spec.argv(sys.executable, p.host, p.data_dir),
            env=self._env(spec), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only us; we stop children in order.
        )  # fmt: skip
        self._children[spec.name].proc = proc
        self._track(self._tasks, self._pump(spec.name, proc))

    def _env(self, spec: Process) -> dict[str, str]:
        p = self._platform
        return {
            **os.environ,
            "SWITCHBOARD_LOG_LEVEL": p.log_level,
            "SWITCHBOARD_REGISTRY": p.registry_addresses(),
            "SWITCHBOARD_DATA_DIR": p.data_dir,
            "SWITCHBOARD_LISTEN": f"{p.host}:{spec.port}",
            "PYTHONUNBUFFERED": "1",
            **self._auth_env(spec),
            **self._tls_env(spec),
        }

    def _tls_env(self, spec: Process) -> dict[str, str]:
        """Development mTLS: serve with its own certificate, dial everyone with it too."""
        if self._pki is None:
            return {}
        own, ca = self._pki.cert(spec.registers_as), str(self._pki.ca)
        return {
            "SWITCHBOARD_TLS_CERT": str(own.cert),
            "SWITCHBOARD_TLS_KEY": str(own.key),
            "SWITCHBOARD_TLS_CLIENT_CA": ca,
            "SWITCHBOARD_REGISTRY_TLS": "1",
            "SWITCHBOARD_REGISTRY_CA": ca,
            "SWITCHBOARD_REGISTRY_CERT": str(own.cert),
            "SWITCHBOARD_REGISTRY_KEY": str(own.key),
            "SWITCHBOARD_CLIENT_TLS_CA": ca,
            "SWITCHBOARD_CLIENT_TLS_CERT": str(own.cert),
            "SWITCHBOARD_CLIENT_TLS_KEY": str(own.key),
        }

    def _channel(self, target: str) -> grpc.aio.Channel:
        """The supervisor's own channel (health and registration checks)."""
        if self._pki is None:
            return grpc.aio.insecure_channel(target, options=_HEALTH_CHANNEL_OPTIONS)
        mine = self._pki.cert(OPERATOR)
        credentials = grpc.ssl_channel_credentials(
            self._pki.ca.read_bytes(), mine.key.read_bytes(), mine.cert.read_bytes()
        )
        return grpc.aio.secure_channel(target, credentials, options=_HEALTH_CHANNEL_OPTIONS)

    def _auth_env(self, spec: Process) -> dict[str, str]:
        """Development auth: the registry checks callers; a service also gets its own token."""
        if self._auth is None:
            return {}
        if spec.name in self._platform.registries:
            return self._auth.server_env()
        return self._auth.service_env(spec.registers_as)

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        """What the supervisor's own registry checks send (a read needs a token under auth)."""
        if self._auth is None:
            return ()
        return (("authorization", f"Bearer {self._auth.token('supervisor', roles=())}"),)

    def _track(self, tasks: set[asyncio.Task[None]], work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _pump(self, name: str, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            say(name, line.decode(errors="replace").rstrip())
        code = await proc.wait()
        if not self._stopping:
            await self._crashed.put((name, code))

    async def _wait_up(self, spec: Process) -> None:
        """Wait until ``spec`` answers SERVING and, unless it is the registry, is registered."""
        target = f"{self._platform.host}:{spec.port}"
        deadline = time.monotonic() + _HEALTH_TIMEOUT_S
        if spec.ready == "tcp":
            await self._poll(spec, deadline, lambda: _accepts(self._platform.host, spec.port))
            return
        async with self._channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            await self._poll(spec, deadline, lambda: _is_serving(stub))
        if spec.name in self._platform.registries:
            return
        # A service turns SERVING first and registers just after: "up" means discoverable.
        registry = self._platform.address(self._platform.registry)
        async with self._channel(registry) as channel:
            rstub = registry_service_pb2_grpc.RegistryServiceStub(channel)
            metadata = self._metadata()
            await self._poll(spec, deadline, lambda: _is_registered(rstub, spec, metadata))

    async def _poll(
        self, spec: Process, deadline: float, ready: Callable[[], Awaitable[bool]]
    ) -> None:
        proc = self._children[spec.name].proc
        while time.monotonic() < deadline:
            if proc is None or proc.returncode is not None:
                raise SupervisorError(f"{spec.name} exited during start-up")
            if await ready():
                return
            await asyncio.sleep(0.05)
        raise SupervisorError(
            f"{spec.name} did not become healthy and registered in {_HEALTH_TIMEOUT_S:.0f} s"
        )

    async def supervise(self, stop: asyncio.Event) -> int:
        """Restart crashed children until ``stop`` is set (0) or one crash-loops (1)."""
        stopped = asyncio.create_task(stop.wait())
        try:
            while True:
                crash = asyncio.create_task(self._crashed.get())
                await asyncio.wait({crash, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not crash.done():
                    crash.cancel()
                    return 0
                if not self._on_crash(*crash.result()):
                    return 1
        finally:
            stopped.cancel()

    def _on_crash(self, name: str, code: int) -> bool:
        """Schedule a restart; False when ``name`` is crash-looping (stop everything)."""
        if code == 0:  # Restart=on-failure: a clean exit (e.g. someone's SIGTERM) is respected
            say("supervisor", f"{name} exited cleanly (code 0); not restarting it")
            return True
        child = self._children[name]
        count = child.record_crash(time.monotonic())
        if count >= CRASH_LIMIT:
            say(
                "supervisor",
                f"{name} exited with code {code}, its {count}th crash in "
                f"{CRASH_WINDOW_S:.0f} s: it is crash-looping, stopping everything",
            )
            return False
        delay = restart_delay(count)
        say(
            "supervisor",
            f"{name} exited unexpectedly with code {code}; restarting in {delay:.1f} s "
            f"(crash {count} of {CRASH_LIMIT} allowed in {CRASH_WINDOW_S:.0f} s)",
        )
        self._track(self._restarts, self._restart(child.spec, delay))
        return True

    async def _restart(self, spec: Process, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._spawn(spec)
        try:
            await self._wait_up(spec)
        except SupervisorError as exc:  # its exit, if any, arrives as the next crash
            say("supervisor", f"restarted {spec.name} is not up: {exc}")
            return
        proc = self._children[spec.name].proc
        say("supervisor", f"{spec.name} restarted and up again (pid {proc.pid if proc else '?'})")

    async def stop(self) -> None:
        """Stop level by level, the last started first, each child with SIGTERM and a bound."""
        self._stopping = True
        for task in list(self._restarts):
            task.cancel()
        await asyncio.gather(*self._restarts, return_exceptions=True)
        for level in reversed(self._platform.levels()):
            await asyncio.gather(*(self._terminate(p.name) for p in level))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 1.0)

    async def _terminate(self, name: str) -> None:
        proc = self._children[name].proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(proc.wait(), timeout=_STOP_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            code = await proc.wait()
        say(name, f"stopped (exit code {code})")


async def _accepts(host: str, port: int) -> bool:
    """True when ``host:port`` accepts a TCP connection (for programs without gRPC health)."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 0.5)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def _is_serving(stub: health_pb2_grpc.HealthStub) -> bool:
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
    except grpc.aio.AioRpcError:
        return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


async def _is_registered(
    stub: registry_service_pb2_grpc.RegistryServiceAsyncStub,
    spec: Process,
    metadata: tuple[tuple[str, str], ...],
) -> bool:
    try:
        request = registry_service_pb2.ResolveRequest(service=spec.registers_as)
        reply = await stub.Resolve(request, timeout=0.5, metadata=metadata)
    except grpc.aio.AioRpcError:
        return False
    return any(i.address.endswith(f":{spec.port}") for i in reply.instances)


def say(name: str, line: str) -> None:
    """Print ``line`` prefixed with who said it: ``user    | ...``."""
    print(f"{name:<8}| {line}", flush=True)


def _banner(platform: Platform, seconds: float, auth: DevAuth | None, pki: DevPki | None) -> str:
    where = ", ".join(f"{p.name} {platform.address(p.name)}" for p in platform.processes)
    registry = platform.address(platform.registry)
    header = '-H "authorization: Bearer $TOKEN" ' if auth is not None else ""
    return "\n".join(
        [
            f"switchboard is up in {seconds:.1f} s: {where}",
            *_auth_lines(platform, auth),
            *_tls_lines(pki),
            "try:",
            f"  grpcurl {_grpcurl_security(pki)} {header}{registry} "
            "switchboard.registry.v1.RegistryService/ListServices",
            f"  switchboard instances --registry {registry}{_cli_security(pki)}",
            *_console_lines(registry, auth),
            "README.md walks through the rest. Ctrl-C stops everything.",
        ]
    )


def _console_lines(registry: str, auth: DevAuth | None) -> list[str]:
    """Where the registry's web console is: its HTTP side port, by default gRPC port + 1000
    (the registry's own listening line names the real one if that port was taken)."""
    if auth is not None:
        return []  # the console does not check --auth identities: it is off then
    host, _, port = registry.rpartition(":")
    return [f"  open http://{host}:{int(port) + 1000}/ (the registry console)"]


def _cli_security(pki: DevPki | None) -> str:
    if pki is None:
        return ""
    mine = pki.cert(OPERATOR)
    return f" --registry-ca {pki.ca} --registry-cert {mine.cert} --registry-key {mine.key}"


def _auth_lines(platform: Platform, auth: DevAuth | None) -> list[str]:
    if auth is None:
        who = "anyone who reaches these ports" if not platform.tls else "any client the CA signed"
        return [
            f"auth is off (development): {who} may call anything;",
            "  `make run AUTH=1` starts with caller authentication and the example policy",
        ]
    return [
        f"auth is on: policy {auth.policy_file}, development secret {auth.secret_file};",
        "  a token with every scope and role of the policy, valid for a day:",
        f"export TOKEN={auth.operator_token()}",
    ]


def _tls_lines(pki: DevPki | None) -> list[str]:
    if pki is None:
        return []
    return [f"mutual TLS is on: CA {pki.ca}; every process has its certificate in {pki.directory}"]


def _grpcurl_security(pki: DevPki | None) -> str:
    if pki is None:
        return "-plaintext"
    mine = pki.cert(OPERATOR)
    return f"-cacert {pki.ca} -cert {mine.cert} -key {mine.key}"


def development_tls(platform: Platform) -> DevPki | None:
    """The development PKI ``platform`` asks for (TLS=1), under ``DATA_DIR/tls``."""
    if not platform.tls:
        return None
    names = [*dict.fromkeys(p.registers_as for p in platform.processes), OPERATOR]
    hosts = list(dict.fromkeys(["127.0.0.1", "localhost", "::1", platform.host]))
    try:
        return development_pki(Path(platform.data_dir) / "tls", names, hosts)
    except TlsError as err:
        raise SupervisorError(str(err)) from None


def development_auth(platform: Platform) -> DevAuth | None:
    """The development auth ``platform`` asks for (AUTH=1), its secret under the data dir."""
    if not platform.auth or platform.auth_policy is None:
        return None
    secret = Path(platform.data_dir) / "auth" / "dev-secret"
    try:
        return dev_auth(platform.auth_policy, secret)
    except ConfigError as err:
        raise SupervisorError(str(err)) from None


async def _run(platform: Platform) -> int:
    auth = development_auth(platform)
    pki = development_tls(platform)
    supervisor = Supervisor(platform, auth, pki)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGHUP too: closing the terminal of `make run` must not orphan the children (they
    # run in their own sessions, so the hangup never reaches them) and leave the ports busy.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    try:
        if not await _started(supervisor, stop):
            return 0
        print(_banner(platform, time.monotonic() - started, auth, pki), flush=True)
        return await supervisor.supervise(stop)
    finally:
        await supervisor.stop()


async def _started(supervisor: Supervisor, stop: asyncio.Event) -> bool:
    """Start everything; False if a signal came first (Ctrl-C during start-up stops at once)."""
    start = asyncio.create_task(supervisor.start())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({start, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not start.done():
        start.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await start
        return False
    start.result()  # raises SupervisorError if a child could not start
    return True


def run_platform(platform: Platform) -> int:
    """Check the ports, run until Ctrl-C/SIGTERM or a crash loop; the exit code (0, 1)."""
    check_ports_free(platform)
    return asyncio.run(_run(platform))
