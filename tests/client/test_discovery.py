"""Discovery through the registry: resolve, watch, and carry on from the cache while it is down."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from harness import Launcher
from services.runtime.agent import RegistrationAgent
from services.runtime.client._client import DEFAULT_CHANNEL_OPTIONS, Client, ClientConfig
from services.runtime.client._discovery import RegistryConfig
from services.runtime.client._retry import RetrySettings
from services.user.client import GET_USER
from switchboard.user.v1 import user_service_pb2
from tests.client._support import (
    Instance,
    Registry,
    StartUsers,
    wait_for,
)

REQUEST = user_service_pb2.GetUserRequest(id="x")
RETRY = RetrySettings(max_attempts=5, initial_backoff_s=0.01, max_backoff_s=0.1)
# Reconnect to a restarted registry within half a second, not the default five.
QUICK_RECONNECT = (
    *DEFAULT_CHANNEL_OPTIONS,
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
)

MakeAgent = Callable[[Instance], RegistrationAgent]


def client_config(registry: Registry, **extra: object) -> ClientConfig:
    return ClientConfig(
        registry=RegistryConfig(addresses=(registry.address,)),
        retry=RETRY,
        channel_options=QUICK_RECONNECT,
        discovery_backoff_cap_s=0.3,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
async def agents(registry: Registry) -> AsyncIterator[list[RegistrationAgent]]:
    """Agents started by a test; stopped (deregistered) at teardown."""
    started: list[RegistrationAgent] = []
    yield started
    for agent in started:
        await agent.stopping()


async def register(
    agents: list[RegistrationAgent], registry: Registry, instance: Instance
) -> RegistrationAgent:
    config = RegistryConfig(addresses=(registry.address,), ttl_s=1.0)
    agent = RegistrationAgent(
        "user", config, advertise_host="127.0.0.1", instance_id=instance.servicer.name,
        backoff_base_s=0.05, backoff_cap_s=0.3,
    )  # fmt: skip
    agents.append(agent)
    await agent.started(instance.port)
    return agent


async def test_resolves_then_follows_changes(
    registry: Registry, start_users: StartUsers, agents: list[RegistrationAgent]
) -> None:
    a = await start_users("a")
    await register(agents, registry, a)
    async with Client(client_config(registry)) as client:
        conn = await client.connect("user")
        assert conn.addresses == (a.address,)
        b = await start_users("b")
        b_agent = await register(agents, registry, b)
        await wait_for(lambda: len(conn.addresses) == 2)
        await b_agent.stopping()
        await wait_for(lambda: conn.addresses == (a.address,))
        assert (await conn.call(GET_USER, REQUEST)).user.id == "a"


async def test_calls_go_on_while_registry_is_down_and_new_instances_appear_after(
    registry: Registry, start_users: StartUsers, agents: list[RegistrationAgent]
) -> None:
    a = await start_users("a")
    await register(agents, registry, a)
    async with Client(client_config(registry)) as client:
        conn = await client.connect("user")
        await registry.stop()
        for _ in range(20):
            assert (await conn.call(GET_USER, REQUEST)).user.id == "a"  # from the cache
        b = await start_users("b")
        await register(agents, registry, b)  # registry down: keeps trying in the background
        await registry.start()  # same port, empty: both agents must (re)register
        await wait_for(lambda: len(conn.addresses) == 2, timeout_s=10)
        served = {(await conn.call(GET_USER, REQUEST)).user.id for _ in range(10)}
        assert served == {"a", "b"}


async def test_static_addresses_stand_in_when_registry_never_answers(
    start_users: StartUsers, registry: Registry
) -> None:
    a = await start_users("a")
    await registry.stop()  # configured, but nobody is there
    config = client_config(registry, static={"user": (a.address,)}, connect_timeout_s=0.2)
    async with Client(config) as client:
        conn = await client.connect("user")
        assert (await conn.call(GET_USER, REQUEST)).user.id == "a"


async def test_unknown_service_fails_as_unavailable_within_deadline(registry: Registry) -> None:
    from services.runtime import errors

    async with Client(client_config(registry)) as client:
        conn = await client.connect("nobody")
        assert conn.addresses == ()
        with pytest.raises(errors.Unavailable) as caught:
            # The attempts (bounded by count, ~0.3 s of backoff) end well within the deadline.
            await conn.call(GET_USER, REQUEST, timeout_s=3.0)
    assert f"the registry ({registry.address}) lists no live instance of it" in str(caught.value)


async def test_an_unreachable_registry_is_named_with_the_refusal(registry: Registry) -> None:
    from services.runtime import errors

    address = registry.address
    await registry.stop()  # configured, but nobody is there
    async with Client(client_config(registry, connect_timeout_s=0.2)) as client:
        conn = await client.connect("user")
        with pytest.raises(errors.Unavailable) as caught:
            await conn.call(GET_USER, REQUEST, timeout_s=3.0)
    message = str(caught.value)
    assert f"no instance of user is known: the registry ({address}) could not be asked" in message
    assert "Connection refused" in message, message


@pytest.mark.e2e
async def test_registry_process_killed_and_restarted(
    start_users: StartUsers, agents: list[RegistrationAgent], launcher: Launcher
) -> None:
    process = await launcher.start("registry")
    registry = Registry(port=process.port)  # only its address is used here
    try:
        a = await start_users("a")
        await register(agents, registry, a)
        async with Client(client_config(registry)) as client:
            conn = await client.connect("user")
            process.kill()
            await process.wait_exit()
            for _ in range(20):
                assert (await conn.call(GET_USER, REQUEST)).user.id == "a"  # from the cache
            await process.restart()  # on the same port
            b = await start_users("b")
            await register(agents, registry, b)
            await wait_for(lambda: len(conn.addresses) == 2, timeout_s=10)
    finally:
        process.kill()
