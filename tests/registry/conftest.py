"""Fixtures: in-process registries from the production factory (on each store), and
registry processes (``harness.Launcher``).

``make_registry`` runs every test that uses it twice: on the in-memory store and on
an ``EtcdStore``. One etcd cluster serves the whole session; each registry gets its
own random key prefix, so tests never see each other's keys, and its leases are
revoked at teardown so no later test sees their expiry bump etcd's revision.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio
import pytest
from etcd.api.etcdserverpb import rpc_pb2

from harness import EtcdCluster, Launcher, StartProcess, etcd_binary, start_server
from registry import MemoryStore, RegistryServicer, RegistrySettings, registry_service
from registry.store import RegistryStore
from registry.store.etcd import EtcdConfig, EtcdStore
from services.runtime import ServerConfig
from switchboard.registry.v1 import registry_service_pb2_grpc as rs_grpc
from tests._support import ci
from tests.registry._support import revoke_everything


@pytest.fixture(scope="session")
def etcd_cluster() -> Iterator[EtcdCluster]:
    """One 3-member etcd cluster on loopback for the whole test session."""
    if etcd_binary() is None and not ci():
        pytest.skip("etcd is not installed: run `make tools-etcd` (CI never skips)")
    with EtcdCluster.start(size=3) as cluster:
        yield cluster


@pytest.fixture(params=["memory", "etcd"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """Which store the registries of this test run on."""
    return str(request.param)


@pytest.fixture
def open_store(store_kind: str, request: pytest.FixtureRequest) -> Callable[..., RegistryStore]:
    """Make a store of this test's kind (etcd: a fresh random prefix each time)."""

    def open_(settings: RegistrySettings) -> RegistryStore:
        if store_kind == "memory":
            return MemoryStore(settings.limits, reap_interval=0.05)
        cluster: EtcdCluster = request.getfixturevalue("etcd_cluster")
        prefix = f"/test/{secrets.token_hex(8)}/"
        config = EtcdConfig.parse_endpoints(cluster.endpoints, prefix=prefix)
        return EtcdStore(config, settings.limits)

    return open_


@dataclass
class Registry:
    """A started in-process registry and a client for it."""

    stub: rs_grpc.RegistryServiceAsyncStub
    store: RegistryStore
    server: grpc.aio.Server
    channel: grpc.aio.Channel
    port: int
    settings: RegistrySettings

    @property
    def on_etcd(self) -> bool:
        return isinstance(self.store, EtcdStore)

    def granted(self, ttl_s: float) -> float:
        """The TTL the store grants for ``ttl_s`` (etcd: whole seconds)."""
        return float(-(-ttl_s // 1)) if self.on_etcd else ttl_s

    async def forget_history(self, before: int) -> None:
        """Make revisions before ``before`` unreplayable (etcd: compact; memory: its
        ``history`` limit already does)."""
        if isinstance(self.store, EtcdStore):
            client = self.store.client
            request = rpc_pb2.CompactionRequest(revision=before, physical=True)
            await client.call(client.kv.Compact, request, client.deadline())

    async def close(self) -> None:
        await self.channel.close()
        if isinstance(self.store, EtcdStore) and not self.store.closed:
            await revoke_everything(self.store)
        await self.store.close()
        await self.server.stop(None)


MakeRegistry = Callable[..., Awaitable[Registry]]


@pytest.fixture
async def make_registry(open_store: Callable[..., RegistryStore]) -> AsyncIterator[MakeRegistry]:
    """Start registries on port 0 with given settings, on each store; all stopped at teardown."""
    started: list[Registry] = []

    async def make(settings: RegistrySettings | None = None, **config: object) -> Registry:
        settings = settings or RegistrySettings()
        store = open_store(settings)
        await store.start()
        servicer = RegistryServicer(
            store, settings, bind_certificates=bool(config.get("tls_client_ca"))
        )
        server_config = ServerConfig(**config)  # type: ignore[arg-type]
        server = await start_server([registry_service(servicer)], server_config)
        channel = grpc.aio.insecure_channel(server.address)
        registry = Registry(
            rs_grpc.RegistryServiceStub(channel), store, server.server, channel, server.port,
            settings,
        )  # fmt: skip
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


@pytest.fixture
async def start_registry_process(tmp_path: Path) -> AsyncIterator[StartProcess]:
    """Start ``python -m registry --listen 127.0.0.1:0 <args>``; killed at teardown."""
    async with Launcher(tmp_path) as launch:
        yield functools.partial(launch.start, "registry")
