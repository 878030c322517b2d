"""Start the whole platform as separate processes, in the foreground: ``make run``.

The registry starts first; the user and product services start once it is healthy
and register with it. Every child's output is prefixed with its name. Ctrl-C or
SIGTERM stops the services first (they deregister and drain) and the registry
last, so deregistration always has a registry to talk to. A child that dies on
its own is reported with its exit code and the rest are stopped: nothing is lost
silently.

Why not honcho/foreman: they signal every child at once (the registry may exit
before the services deregister), cannot wait for gRPC health before declaring
the platform up, and report a busy port as a child's stack trace.

Example::

    $ python -m services.runtime.supervisor          # or: make run
    registry | registry listening on 127.0.0.1:50051
    ...
    switchboard is up: registry 127.0.0.1:50051, user 127.0.0.1:50052, ...
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import (  # type: ignore[import-untyped, unused-ignore]
    health_pb2,
    health_pb2_grpc,
)

from switchboard.registry.v1 import registry_service_pb2, registry_service_pb2_grpc

__all__ = ["Child", "PlatformConfig", "main"]

_STOP_TIMEOUT_S = 20.0
_HEALTH_TIMEOUT_S = 15.0
# The first health checks run before the child listens; gRPC's default reconnect backoff
# (1 s, growing) would then delay "up" by about a second per child.
_HEALTH_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 200),
)


@dataclass(frozen=True)
class Child:
    """One process of the platform: its name, port and ``python -m`` module."""

    name: str
    module: str
    port: int
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PlatformConfig:
    """Where the platform listens and keeps its data; read from the environment.

    ``REGISTRY_PORT``, ``USER_PORT``, ``PRODUCT_PORT``, ``HOST``, ``DATA_DIR`` and
    ``LOG_LEVEL`` override the defaults (``make run USER_PORT=6000`` passes them).
    """

    host: str = "127.0.0.1"
    registry_port: int = 50051
    user_port: int = 50052
    product_port: int = 50053
    data_dir: str = "./var"
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PlatformConfig:
        """Build the configuration, taking each value from ``env`` when it is set."""
        d = cls()
        return cls(
            host=env.get("HOST") or d.host,
            registry_port=_port(env, "REGISTRY_PORT", d.registry_port),
            user_port=_port(env, "USER_PORT", d.user_port),
            product_port=_port(env, "PRODUCT_PORT", d.product_port),
            data_dir=env.get("DATA_DIR") or d.data_dir,
            log_level=(env.get("LOG_LEVEL") or d.log_level).upper(),
        )

    def children(self) -> list[Child]:
        """The processes to start, registry first."""
        registry = f"{self.host}:{self.registry_port}"
        common = {"SWITCHBOARD_LOG_LEVEL": self.log_level, "SWITCHBOARD_REGISTRY": registry}
        data = {"SWITCHBOARD_DATA_DIR": self.data_dir}
        return [
            Child("registry", "registry", self.registry_port, common),
            Child("user", "services.user", self.user_port, {**common, **data}),
            Child("product", "services.product", self.product_port, {**common, **data}),
        ]


class SupervisorError(Exception):
    """A condition that stops ``make run`` with a one-line message and exit code 2."""


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SupervisorError(f"{name}={raw!r} is not a port number (1-65535)")
    return int(raw)


def check_ports_free(host: str, children: Sequence[Child]) -> None:
    """Fail with a clear message if any child's port is already taken."""
    for child in children:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            try:
                sock.bind((host, child.port))
            except OSError as exc:
                var = f"{child.name.upper()}_PORT"
                raise SupervisorError(
                    f"port {child.port} ({child.name}) on {host} is busy ({exc.strerror}): "
                    f"is Switchboard already running? Stop it, or choose another port, "
                    f"e.g. make run {var}={child.port + 100}"
                ) from None


class Supervisor:
    """Starts, watches and stops the children; see the module docstring."""

    def __init__(self, config: PlatformConfig) -> None:
        self._config = config
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._pumps: list[asyncio.Task[None]] = []
        self._stopping = False
        self._crashed: asyncio.Queue[tuple[str, int]] = asyncio.Queue()

    async def start(self) -> None:
        """Start every child in order, each once the previous one is healthy."""
        for child in self._config.children():
            await self._spawn(child)
            await self._wait_healthy(child)

    async def _spawn(self, child: Child) -> None:
        env = {**os.environ, **child.env}
        env["SWITCHBOARD_LISTEN"] = f"{self._config.host}:{child.port}"
        env["PYTHONUNBUFFERED"] = "1"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", child.module,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only us; we stop children in order.
        )  # fmt: skip
        self._procs[child.name] = proc
        self._pumps.append(asyncio.create_task(self._pump(child.name, proc)))

    async def _pump(self, name: str, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            _say(f"{name:<8}| {line.decode(errors='replace').rstrip()}")
        code = await proc.wait()
        if not self._stopping:
            await self._crashed.put((name, code))

    async def _wait_healthy(self, child: Child) -> None:
        target = f"{self._config.host}:{child.port}"
        deadline = time.monotonic() + _HEALTH_TIMEOUT_S
        async with grpc.aio.insecure_channel(target, options=_HEALTH_CHANNEL_OPTIONS) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            await self._poll(child, deadline, lambda: _is_serving(stub))
        if child.name == "registry":
            return
        # A service turns SERVING first and registers just after: "up" means discoverable.
        registry = f"{self._config.host}:{self._config.registry_port}"
        async with grpc.aio.insecure_channel(registry) as channel:
            rstub = registry_service_pb2_grpc.RegistryServiceStub(channel)
            await self._poll(child, deadline, lambda: _is_registered(rstub, child))

    async def _poll(
        self, child: Child, deadline: float, ready: Callable[[], Awaitable[bool]]
    ) -> None:
        while time.monotonic() < deadline:
            if self._procs[child.name].returncode is not None:
                raise SupervisorError(f"{child.name} exited during start-up")
            if await ready():
                return
            await asyncio.sleep(0.05)
        raise SupervisorError(
            f"{child.name} did not become healthy and registered in {_HEALTH_TIMEOUT_S:.0f} s"
        )

    async def wait_for_crash(self) -> tuple[str, int]:
        """Return the name and exit code of the first child that died on its own."""
        return await self._crashed.get()

    async def stop(self) -> None:
        """Stop the services, then the registry, each with SIGTERM and a bound."""
        self._stopping = True
        names = list(self._procs)
        services, registry = names[1:], names[:1]
        for group in (services, registry):
            await asyncio.gather(*(self._terminate(n) for n in reversed(group)))
        for pump in self._pumps:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(pump, timeout=1.0)

    async def _terminate(self, name: str) -> None:
        proc = self._procs[name]
        if proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(proc.wait(), timeout=_STOP_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            code = await proc.wait()
        _say(f"{name:<8}| stopped (exit code {code})")


async def _is_serving(stub: health_pb2_grpc.HealthStub) -> bool:
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
    except grpc.aio.AioRpcError:
        return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


async def _is_registered(
    stub: registry_service_pb2_grpc.RegistryServiceAsyncStub, child: Child
) -> bool:
    try:
        reply = await stub.Resolve(
            registry_service_pb2.ResolveRequest(service=child.name), timeout=0.5
        )
    except grpc.aio.AioRpcError:
        return False
    return any(i.address.endswith(f":{child.port}") for i in reply.instances)


def _say(line: str) -> None:
    print(line, flush=True)


def _banner(config: PlatformConfig, seconds: float) -> str:
    h = config.host
    return "\n".join(
        [
            f"switchboard is up in {seconds:.1f} s: registry {h}:{config.registry_port}, "
            f"user {h}:{config.user_port}, product {h}:{config.product_port}",
            "try:",
            f"  grpcurl -plaintext {h}:{config.registry_port} "
            "switchboard.registry.v1.RegistryService/ListServices",
            f'  grpcurl -plaintext -d \'{{"user": {{"email": "ada@example.com", '
            f'"display_name": "Ada"}}}}\' {h}:{config.user_port} '
            "switchboard.user.v1.UserService/CreateUser",
            "README.md walks through the rest. Ctrl-C stops everything.",
        ]
    )


async def _run(config: PlatformConfig) -> int:
    supervisor = Supervisor(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGHUP too: closing the terminal of `make run` must not orphan the children (they
    # run in their own sessions, so the hangup never reaches them) and leave the ports busy.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    try:
        await supervisor.start()
    except SupervisorError:
        await supervisor.stop()
        raise
    _say(_banner(config, time.monotonic() - started))
    return await _until_stop_or_crash(supervisor, stop)


async def _until_stop_or_crash(supervisor: Supervisor, stop: asyncio.Event) -> int:
    crash = asyncio.create_task(supervisor.wait_for_crash())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({crash, stopped}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if crash.done():
        name, exit_code = crash.result()
        _say(f"supervisor| {name} exited unexpectedly with code {exit_code}; stopping the rest")
        code = 1
    for task in (crash, stopped):
        task.cancel()
    await supervisor.stop()
    return code


def main(env: Mapping[str, str] | None = None) -> int:
    """Run the platform until Ctrl-C/SIGTERM; return the process exit code."""
    try:
        config = PlatformConfig.from_env(os.environ if env is None else env)
        check_ports_free(config.host, config.children())
        return asyncio.run(_run(config))
    except SupervisorError as exc:
        print(f"make run: {exc}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
