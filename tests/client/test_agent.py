"""The registration agent: register with the real port, renew, rejoin after a restart, leave."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import grpc
import pytest

from registry import RegistrySettings
from services.runtime.agent import RegistrationAgent, default_instance_id
from services.runtime.client._discovery import RegistryConfig
from switchboard.registry.v1 import registry_service_pb2, registry_service_pb2_grpc
from tests._support import LoopLag
from tests.client._support import Registry, StartUsers, wait_for

MakeAgent = Callable[..., RegistrationAgent]


@pytest.fixture
async def make_agent(registry: Registry) -> AsyncIterator[MakeAgent]:
    """Agents for ``registry`` with a 1 s TTL and quick backoff; stopped at teardown."""
    made: list[RegistrationAgent] = []

    def make(service: str = "user", **options: object) -> RegistrationAgent:
        config = options.pop("config", None) or RegistryConfig(
            addresses=(registry.address,), ttl_s=1.0, version="1.2.3", metadata={"zone": "z1"}
        )
        agent = RegistrationAgent(
            service, config, advertise_host="127.0.0.1",  # type: ignore[arg-type]
            backoff_base_s=0.05, backoff_cap_s=0.3, **options,  # type: ignore[arg-type]
        )  # fmt: skip
        made.append(agent)
        return agent

    yield make
    for agent in made:
        await agent.stopping()


async def resolve(
    registry: Registry, service: str = "user"
) -> registry_service_pb2.ResolveResponse:
    async with grpc.aio.insecure_channel(registry.address) as channel:
        stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
        request = registry_service_pb2.ResolveRequest(service=service)
        return await stub.Resolve(request, timeout=2)


def test_default_instance_id_fits_the_registry_rules() -> None:
    first, second = default_instance_id(), default_instance_id()
    assert first != second
    assert len(first) <= 128
    assert all(c.isalnum() or c in "._:-" for c in first)


async def test_registers_the_real_port_and_renews(
    registry: Registry, start_users: StartUsers, make_agent: MakeAgent
) -> None:
    instance = await start_users("a")  # bound on port 0
    agent = make_agent()
    await agent.started(instance.port)
    (registered,) = (await resolve(registry)).instances
    assert registered.address == f"127.0.0.1:{instance.port}"
    assert registered.instance_id == agent.instance_id
    assert (registered.version, dict(registered.metadata)) == ("1.2.3", {"zone": "z1"})
    assert agent.interval_s == pytest.approx(1 / 3)
    await wait_for(lambda: agent.renewals >= 4, timeout_s=3)  # > 1 TTL of renewals
    assert [i.instance_id for i in (await resolve(registry)).instances] == [agent.instance_id]
    assert agent.registrations == 1


async def test_registers_again_after_a_registry_restart(
    registry: Registry, make_agent: MakeAgent
) -> None:
    agent = make_agent()
    await agent.started(5001)
    await registry.stop()
    await registry.start()  # same port, empty store: the lease is unknown there
    await wait_for(lambda: agent.registrations == 2, timeout_s=5)
    assert [i.address for i in (await resolve(registry)).instances] == ["127.0.0.1:5001"]


async def test_deregisters_on_stop_within_bound(registry: Registry, make_agent: MakeAgent) -> None:
    agent = make_agent()
    await agent.started(5001)
    async with LoopLag() as lag:
        start = time.monotonic()
        await agent.stopping()
        took = time.monotonic() - start
    assert took < 1.0 + lag.worst, f"{took:.3f} s (loop lag {lag.worst:.3f} s)"
    assert list((await resolve(registry)).instances) == []
    assert agent.lease_id is None


async def test_stop_is_bounded_when_registry_is_gone(
    registry: Registry, make_agent: MakeAgent
) -> None:
    agent = make_agent(deregister_timeout_s=0.3)
    await agent.started(5001)
    await registry.stop()
    async with LoopLag() as lag:
        start = time.monotonic()
        await agent.stopping()
        took = time.monotonic() - start
    assert took < 0.6 + lag.worst, f"{took:.3f} s (loop lag {lag.worst:.3f} s)"


async def test_starts_without_registry_and_joins_when_it_appears(
    registry: Registry, make_agent: MakeAgent
) -> None:
    await registry.stop()
    agent = make_agent()
    start = time.monotonic()
    await agent.started(5001)
    assert time.monotonic() - start < 1.5  # one bounded attempt, then the background takes over
    assert agent.lease_id is None
    await registry.start()
    assert await agent.wait_registered(5)
    assert len((await resolve(registry)).instances) == 1


async def test_bearer_token_is_sent(make_agent: MakeAgent) -> None:
    secured = await Registry(settings=RegistrySettings(token="s3cret-token-123456")).start()
    try:
        good = RegistryConfig(addresses=(secured.address,), token="s3cret-token-123456")
        bad = RegistryConfig(addresses=(secured.address,), token="wrong")
        with_token, without = make_agent(config=good), make_agent(config=bad)
        await with_token.started(5001)
        await without.started(5002)
        assert with_token.lease_id is not None
        assert without.lease_id is None  # UNAUTHENTICATED: logged, retried with backoff
        await with_token.stopping()
        await without.stopping()
    finally:
        await secured.stop()


async def test_restart_is_no_stampede(registry: Registry, make_agent: MakeAgent) -> None:
    agents = [make_agent(instance_id=f"i{n}") for n in range(20)]
    await asyncio.gather(*(agent.started(6000 + n) for n, agent in enumerate(agents)))
    await registry.stop()
    restarted = time.monotonic()
    await registry.start()
    when: dict[str, float] = {}

    def all_back() -> bool:
        for agent in agents:
            if agent.registrations == 2 and agent.instance_id not in when:
                when[agent.instance_id] = time.monotonic() - restarted
        return len(when) == len(agents)

    await wait_for(all_back, timeout_s=5)
    spread = max(when.values()) - min(when.values())
    assert spread > 0.1, when  # spread over the renewal interval, not all at once
