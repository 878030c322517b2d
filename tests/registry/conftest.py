"""Fixtures: in-process registries from the production factory, and registry processes."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio
import pytest

from registry import MemoryStore, RegistryServicer, RegistrySettings, registry_service
from services.runtime import ServerConfig, create_server
from switchboard.registry.v1 import registry_service_pb2_grpc as rs_grpc

REPO = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"registry listening on (\S+):(\d+)")


@dataclass
class Registry:
    """A started in-process registry and a client for it."""

    stub: rs_grpc.RegistryServiceAsyncStub
    store: MemoryStore
    server: grpc.aio.Server
    channel: grpc.aio.Channel
    port: int
    settings: RegistrySettings

    async def close(self) -> None:
        await self.channel.close()
        await self.store.close()
        await self.server.stop(None)


MakeRegistry = Callable[..., Awaitable[Registry]]


@pytest.fixture
async def make_registry() -> AsyncIterator[MakeRegistry]:
    """Start registries on port 0 with given settings; all stopped at teardown."""
    started: list[Registry] = []

    async def make(settings: RegistrySettings | None = None, **config: object) -> Registry:
        settings = settings or RegistrySettings()
        store = MemoryStore(settings.limits, reap_interval=0.05)
        await store.start()
        servicer = RegistryServicer(
            store, settings, bind_certificates=bool(config.get("tls_client_ca"))
        )
        server_config = ServerConfig(listen="127.0.0.1:0", **config)  # type: ignore[arg-type]
        server, port = create_server([registry_service(servicer)], server_config)
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        registry = Registry(
            rs_grpc.RegistryServiceStub(channel), store, server, channel, port, settings
        )
        started.append(registry)
        return registry

    yield make
    for registry in reversed(started):
        await registry.close()


@pytest.fixture
async def registry(make_registry: MakeRegistry) -> Registry:
    """A registry with default settings (no token)."""
    return await make_registry()


async def eventually(predicate: Callable[[], bool], limit_s: float = 3.0) -> None:
    """Wait (bounded) until ``predicate()`` holds, for state with no event to await."""
    for _ in range(int(limit_s / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met within {limit_s}s")


@dataclass
class RegistryProcess:
    """A ``python -m registry`` subprocess; its log goes to a file (never a full pipe)."""

    process: asyncio.subprocess.Process
    log_path: Path
    port: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_listening(self, limit_s: float = 15.0) -> int:
        """Read the bound port from the process's "registry listening on" log line."""
        for _ in range(int(limit_s / 0.05)):
            match = _LISTENING.search(self.log())
            if match:
                self.port = int(match.group(2))
                return self.port
            if self.process.returncode is not None:
                raise AssertionError(f"registry exited early:\n{self.log()}")
            await asyncio.sleep(0.05)
        raise AssertionError(f"registry did not report its port in {limit_s}s:\n{self.log()}")

    async def wait_exit(self, limit_s: float = 15.0) -> int:
        try:
            return await asyncio.wait_for(self.process.wait(), limit_s)
        except TimeoutError:
            raise AssertionError(
                f"registry still running after {limit_s}s:\n{self.log()}"
            ) from None

    def signal(self, signum: int) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signum)


StartProcess = Callable[..., Awaitable[RegistryProcess]]


@pytest.fixture
async def start_registry_process(tmp_path: Path) -> AsyncIterator[StartProcess]:
    """Start ``python -m registry --listen 127.0.0.1:0 <args>``; killed at teardown."""
    processes: list[RegistryProcess] = []

    async def start(*args: str, env: dict[str, str] | None = None) -> RegistryProcess:
        log_path = tmp_path / f"registry-{len(processes)}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        full_env.update(env or {})
        with log_path.open("wb") as log_file:  # the child keeps its own descriptor
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "registry", "--listen", "127.0.0.1:0", *args),
                cwd=REPO,
                env=full_env,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
            )
        handle = RegistryProcess(process, log_path)
        processes.append(handle)
        await handle.wait_listening()
        return handle

    yield start
    for handle in processes:
        if handle.process.returncode is None:
            handle.process.kill()
        await asyncio.wait_for(handle.process.wait(), 10)
