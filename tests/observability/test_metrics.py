"""Metric values on an in-process server and client; the HTTP side port; its settings.

Metrics live in the process-wide registry, so each test compares before and after.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from harness import serving
from harness.fakes import FakeUsers, users_service
from registry._observe import count_expiry
from registry.store import MemoryStore
from services.runtime import (
    BindError,
    Client,
    ClientConfig,
    ConfigError,
    HttpRoute,
    ServerConfig,
    current_http_address,
    errors,
    serve,
)
from services.runtime.config import access_log_sampling
from services.runtime.logs import AccessLog
from services.runtime.server._http import HttpSidePort
from services.user.client import GET_USER, WATCH_USERS
from switchboard.registry.v1.instance_pb2 import Instance
from switchboard.user.v1 import user_service_pb2
from tests.observability._support import get_json, reachable, sample, scrape

USER = "switchboard.user.v1.UserService"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def delta(name: str, **labels: str) -> Callable[[], float]:
    """A function giving how much ``name{labels}`` grew since now."""
    before = value(name, **labels)
    return lambda: value(name, **labels) - before


@dataclass
class Served:
    users: FakeUsers
    client: Client


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    users = FakeUsers()
    async with serving([users_service(users)]) as server:
        config = ClientConfig(static={"user": (server.address,)})
        async with Client(config) as client:
            yield Served(users, client)


async def test_a_retried_call_counts_two_attempts_and_one_retry(served: Served) -> None:
    method = {"grpc_service": USER, "grpc_method": "GetUser"}
    ok_attempts = delta("switchboard_client_attempts_total", grpc_code="OK", **method)
    failed = delta("switchboard_client_attempts_total", grpc_code="UNAVAILABLE", **method)
    retries = delta("switchboard_client_retries_total", grpc_code="UNAVAILABLE", **method)
    calls = delta("grpc_client_handled_total", grpc_type="unary", grpc_code="OK", **method)
    started = delta("grpc_client_started_total", grpc_type="unary", **method)
    server_failed = delta(
        "grpc_server_handled_total", grpc_type="unary", grpc_code="UNAVAILABLE", **method
    )
    served.users.script["GetUser"] = [errors.Unavailable("once")]
    conn = await served.client.connect("user")
    await conn.call(GET_USER, user_service_pb2.GetUserRequest(id="ada"))
    assert (ok_attempts(), failed(), retries()) == (1, 1, 1)
    assert (calls(), started(), server_failed()) == (1, 1, 1)


async def test_a_failing_call_is_counted_with_its_code_on_both_sides(served: Served) -> None:
    method = {"grpc_service": USER, "grpc_method": "UpdateUser", "grpc_type": "unary"}
    client_nf = delta("grpc_client_handled_total", grpc_code="NOT_FOUND", **method)
    server_nf = delta("grpc_server_handled_total", grpc_code="NOT_FOUND", **method)
    latency = delta("grpc_server_handling_seconds_count", **method)
    conn = await served.client.connect("user")
    request = user_service_pb2.UpdateUserRequest(request_id="r1")
    request.user.id = "nobody"
    with pytest.raises(errors.NotFound):
        await conn.call("/switchboard.user.v1.UserService/UpdateUser", request)
    # The server records a failed call before its status goes out: no wait needed.
    assert (client_nf(), server_nf(), latency()) == (1, 1, 1)


async def test_a_stream_counts_its_messages(served: Served) -> None:
    method = {"grpc_service": USER, "grpc_method": "WatchUsers", "grpc_type": "server_stream"}
    sent = delta("grpc_server_msg_sent_total", **method)
    received = delta("grpc_server_msg_received_total", **method)
    handled = delta("grpc_server_handled_total", grpc_code="OK", **method)
    conn = await served.client.connect("user")
    events = [e async for e in conn.stream(WATCH_USERS, user_service_pb2.WatchUsersRequest())]
    assert len(events) == 3
    assert (sent(), received(), handled()) == (3, 1, 1)


async def _serving(
    config: ServerConfig, routes: list[HttpRoute]
) -> tuple[asyncio.Event, asyncio.Task[None], asyncio.Future[str | None]]:
    """Start ``serve`` in a task; the future gets the HTTP address the hooks see."""
    stop = asyncio.Event()
    seen: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

    class Hook:
        async def started(self, port: int) -> None:
            seen.set_result(current_http_address())

        async def stopping(self) -> None:
            """Nothing to undo."""

    users = users_service(FakeUsers())
    task = asyncio.create_task(
        serve([users], config, hooks=[Hook()], stop=stop, http_routes=routes)
    )
    await asyncio.wait_for(asyncio.shield(seen), 10)
    return stop, task, seen


async def test_side_port_serves_metrics_and_added_routes() -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": "world"})

    config = ServerConfig(listen="127.0.0.1:0", grace_s=0)
    stop, task, seen = await _serving(config, [HttpRoute("GET", "/hello", hello)])
    address = seen.result()
    assert address is not None and address.startswith("127.0.0.1:")
    assert await get_json(f"http://{address}/hello") == {"hello": "world"}
    text = await scrape(address)
    assert "# TYPE grpc_server_handled_total counter" in text
    assert sample(text, "process_cpu_seconds_total") is not None  # prometheus_client's defaults
    assert not await reachable(f"http://{address}/")  # "/" is left to the process
    stop.set()
    await asyncio.wait_for(task, 10)
    assert not await reachable(f"http://{address}/metrics")


async def test_side_port_off() -> None:
    config = ServerConfig(listen="127.0.0.1:0", grace_s=0, http_listen="off")
    stop, task, seen = await _serving(config, [])
    assert seen.result() is None
    stop.set()
    await asyncio.wait_for(task, 10)


def test_side_port_settings() -> None:
    assert ServerConfig(listen="127.0.0.1:50052").http_address == ("127.0.0.1", 51052)
    assert ServerConfig(listen="127.0.0.1:0").http_address == ("127.0.0.1", 0)
    assert ServerConfig(listen="0.0.0.0:65000").http_address == ("0.0.0.0", 0)
    assert ServerConfig(http_listen="[::1]:9100").http_address == ("::1", 9100)
    assert ServerConfig(http_listen="off").http_address is None
    for bad in ({"http_listen": "nope"}, {"log_format": "xml"}, {"access_log": "sampled:0"}):
        with pytest.raises(ConfigError):
            ServerConfig(**bad)  # type: ignore[arg-type]
    assert [access_log_sampling(m) for m in ("all", "errors", "sampled:10")] == [1, 0, 10]


def test_access_log_samples_successes_and_keeps_every_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="switchboard.access")
    lines: list[str] = []

    class Sink:
        def write(self, text: str) -> None:
            lines.extend(text.splitlines())

        def flush(self) -> None:
            """Nothing buffered here."""

    log = AccessLog()
    log.configure("sampled:4", stream=Sink(), json_lines=False)  # type: ignore[arg-type]
    for _ in range(8):
        log.record("/a.v1.S/Get", grpc.StatusCode.OK, 0.2, "rid", "peer")
    log.record("/a.v1.S/Get", grpc.StatusCode.NOT_FOUND, 0.2, "rid", "peer")
    log.flush()
    assert [line.split(" code=")[1].split(" ")[0] for line in lines] == ["OK", "OK", "NOT_FOUND"]
    assert all("method=/a.v1.S/Get" in line and "request_id=rid" in line for line in lines)


async def test_a_taken_side_port_is_an_error_only_when_chosen() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        chosen = ServerConfig(listen="127.0.0.1:0", http_listen=f"127.0.0.1:{port}")
        with pytest.raises(BindError, match="--http-listen"):
            await serve([users_service(FakeUsers())], chosen, stop=asyncio.Event())
        if port > 1000:  # the derived default (gRPC port + 1000) gives way to a free port
            derived = ServerConfig(listen=f"127.0.0.1:{port - 1000}")
            side = HttpSidePort(derived)
            endpoint = await side.start()
            assert endpoint is not None and not endpoint.listen.endswith(f":{port}")
            await side.stop()


def test_access_lines_reach_a_handler_added_after_configure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="switchboard.access")
    written: list[str] = []

    class Sink:
        def write(self, text: str) -> None:
            written.append(text)

        def flush(self) -> None:
            """Nothing buffered here."""

    log = AccessLog()
    log.configure("all", stream=Sink(), json_lines=False)  # type: ignore[arg-type]
    log.record("/a.v1.S/Get", grpc.StatusCode.OK, 0.2, "before", "peer")
    log.flush()
    assert len(written) == 1 and "request_id=before" in written[0]
    added = logging.Handler()
    seen: list[logging.LogRecord] = []
    added.emit = seen.append  # type: ignore[method-assign,assignment]
    logging.getLogger().addHandler(added)
    try:
        log.record("/a.v1.S/Get", grpc.StatusCode.OK, 0.2, "after", "peer")
    finally:
        logging.getLogger().removeHandler(added)
    log.flush()
    assert [r.getMessage().split("request_id=")[1].split()[0] for r in seen] == ["after"]
    assert len(written) == 1


async def test_an_expired_lease_is_counted_by_service() -> None:
    now = [1_000.0]
    store = MemoryStore(initial_revision=0, clock=lambda: now[0], on_expired=count_expiry)
    instance = Instance(service="expiring", instance_id="e1", address="127.0.0.1:5000")
    await store.register(instance, 5.0)
    before = value("switchboard_registry_expiries_total", service="expiring")
    now[0] += 6.0
    assert store.reap() == 1
    after = value("switchboard_registry_expiries_total", service="expiring")
    assert after == before + 1
