"""Typed clients, the sync wrapper and the settings they read (the CLI: tests/platform)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import pytest

from services.runtime import errors
from services.runtime.agent import RegistrationAgent
from services.runtime.client._channel import build_target, resolve_addresses, split_address
from services.runtime.client._client import Client, ClientConfig
from services.runtime.client._discovery import (
    RegistryConfig,
    add_registry_arguments,
    parse_metadata,
)
from services.runtime.client._sync import SyncClient
from services.runtime.client._typed import RegistryClient
from services.user.client import UserClient
from tests.client._support import Instance, Registry, StartUsers


@pytest.fixture
async def users(start_users: StartUsers) -> AsyncIterator[tuple[Instance, UserClient]]:
    instance = await start_users("typed")
    async with Client(ClientConfig(static={"user": (instance.address,)})) as client:
        yield instance, await UserClient.connect(client)


async def test_user_client_round_trip(users: tuple[Instance, UserClient]) -> None:
    instance, client = users
    created = await client.create_user(email="ada@example.com", display_name="Ada")
    assert created.email == "ada@example.com"
    assert (await client.get_user("u1")).display_name == "u1"  # the fake echoes the id
    assert [u.id for u in (await client.list_users(page_size=10)).users] == [created.id]
    updated = await client.update_user(created.id, display_name="Ada L.")
    assert (updated.display_name, updated.email) == ("Ada L.", "ada@example.com")
    assert await client.delete_user(created.id) == 100
    with pytest.raises(errors.NotFound):
        await client.delete_user(created.id)
    events = [e.revision async for e in client.watch_users(start_revision=5)]
    assert events == [6, 7, 8]
    assert instance.servicer.calls["DeleteUser"] == 2  # NOT_FOUND was not retried


async def test_registry_client_lists_and_resolves(
    registry: Registry, start_users: StartUsers
) -> None:
    instance = await start_users("a")
    config = RegistryConfig(addresses=(registry.address,), version="9.9")
    agent = RegistrationAgent("user", config, advertise_host="127.0.0.1", instance_id="user-a")
    await agent.started(instance.port)
    gone = RegistrationAgent("user", config, advertise_host="127.0.0.1", instance_id="user-gone")
    await gone.started(1)  # nothing listens there
    try:
        async with Client(ClientConfig(registry=config)) as client:
            reader = RegistryClient(await client.registry())
            assert [s.name for s in (await reader.list_services()).services] == ["user"]
            assert len((await reader.resolve("user")).instances) == 2
    finally:
        await agent.stopping()
        await gone.stopping()


async def test_sync_client(start_users: StartUsers) -> None:
    instance = await start_users("sync")

    def script() -> list[str]:
        config = ClientConfig(static={"user": (instance.address,)})
        with SyncClient(config) as client:
            users = client.typed(UserClient)
            created = users.create_user(email="a@b.c", display_name="A")
            fetched = users.get_user(created.id)
            revisions = [str(e.revision) for e in users.watch_users(0)]
            return [created.id, fetched.id, *revisions]

    assert await asyncio.to_thread(script) == ["u1", "sync", "1", "2", "3"]


def test_registry_config_from_flags_and_env() -> None:
    parser = argparse.ArgumentParser()
    add_registry_arguments(parser)
    ns = parser.parse_args(["--registry", "a:1, b:2", "--instance-metadata", "zone=z1,w=2"])
    env = {
        "SWITCHBOARD_REGISTRY": "ignored:1",
        "SWITCHBOARD_TOKEN": "tok",
        "SWITCHBOARD_REGISTRY_TTL_S": "3",
    }
    config = RegistryConfig.from_args(ns, env)
    assert config.addresses == ("a:1", "b:2")
    assert config.token == "tok" and config.ttl_s == 3.0
    assert dict(config.metadata) == {"zone": "z1", "w": "2"}
    assert config.auth_metadata() == (("authorization", "Bearer tok"),)
    assert not RegistryConfig.from_env({}).enabled
    with pytest.raises(ValueError, match="SWITCHBOARD_REGISTRY_TTL_S"):
        RegistryConfig.from_env({"SWITCHBOARD_REGISTRY_TTL_S": "soon"})
    with pytest.raises(ValueError):
        parse_metadata("novalue")


def test_client_config_from_env() -> None:
    env = {
        "SWITCHBOARD_REGISTRY": "r:1",
        "SWITCHBOARD_ADDRESSES_USER": "127.0.0.1:5001,127.0.0.1:5002",
        "SWITCHBOARD_ADDRESSES_ORDER_BOOK": "127.0.0.1:6000",
        "SWITCHBOARD_CLIENT_TIMEOUT_S": "2.5",
    }
    config = ClientConfig.from_env(env)
    assert config.registry.addresses == ("r:1",)
    assert dict(config.static) == {
        "user": ("127.0.0.1:5001", "127.0.0.1:5002"),
        "order-book": ("127.0.0.1:6000",),
    }
    assert config.default_timeout_s == 2.5


def test_targets() -> None:
    assert split_address("[::1]:80") == ("::1", 80)
    assert build_target([("10.0.0.1", 1), ("10.0.0.2", 2)]) == "ipv4:10.0.0.1:1,10.0.0.2:2"
    assert build_target([("127.0.0.1", 1), ("::1", 2)]) == "ipv6:[::ffff:127.0.0.1]:1,[::1]:2"
    for bad in ("nohost", ":80", "host:0", "host:x"):
        with pytest.raises(ValueError):
            split_address(bad)


async def test_host_names_are_resolved() -> None:
    resolved = await resolve_addresses(["localhost:80", "127.0.0.1:81", "no-such-host.invalid:1"])
    assert ("127.0.0.1", 80) in resolved and ("127.0.0.1", 81) in resolved
    assert all(host != "no-such-host.invalid" for host, _ in resolved)
