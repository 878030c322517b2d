"""Fixtures: in-process registries from the production factory (on each store), and
registry processes (``harness.Launcher``).

``make_registry`` runs every test that uses it twice: on the in-memory store and on
an ``EtcdStore``. One etcd cluster serves the whole session; each registry gets its
own random key prefix, so tests never see each other's keys, and its leases are
revoked at teardown so no later test sees their expiry bump etcd's revision.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import AsyncIterator, Callable, Iterator

import grpc
import grpc.aio
import pytest

from harness import EtcdCluster, Launcher, StartProcess, etcd_binary, start_server
from registry import MemoryStore, RegistryServicer, RegistrySettings, registry_service
from registry.store import RegistryStore
from registry.store.etcd import EtcdConfig, EtcdStore
from services.runtime import ServerConfig
from switchboard.registry.v1 import registry_service_pb2_grpc as rs_grpc
from tests._support import ci
from tests.registry._support import MakeRegistry, Registry


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


@pytest.fixture
def start_registry_process(launcher: Launcher) -> StartProcess:
    """Start ``python -m registry --listen 127.0.0.1:0 <args>``; killed at teardown."""
    return functools.partial(launcher.start, "registry")
