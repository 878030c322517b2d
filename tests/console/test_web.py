"""The console's HTTP layer in process: headers, the token gate, the login cookie, the API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from registry.console import COOKIE, SECURITY_HEADERS, ConsoleModel, console_routes
from registry.store import MemoryStore
from switchboard.registry.v1 import instance_pb2

TOKEN = "s3cret-token"
CSP = SECURITY_HEADERS["Content-Security-Policy"]


async def _client(token: str | None) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    store = MemoryStore(initial_revision=100)
    await store.start()
    model = ConsoleModel(store, discover_interval_s=0.02)
    await model.start()
    await store.register(
        instance_pb2.Instance(service="user", instance_id="u-1", address="127.0.0.1:1"), ttl=30
    )
    app = web.Application()
    for route in console_routes(model, token):
        app.router.add_route(route.method, route.path, route.handler)
    async with TestClient(TestServer(app)) as client:
        yield client
    await model.stop()
    await store.close()


@pytest.fixture
async def open_console() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async for client in _client(None):
        yield client


@pytest.fixture
async def guarded() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async for client in _client(TOKEN):
        yield client


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/static/style.css", "/api/v1/services"])
async def test_every_answer_carries_a_strict_csp(
    open_console: TestClient[web.Request, web.Application], path: str
) -> None:
    answer = await open_console.get(path)
    assert answer.status == 200
    assert answer.headers["Content-Security-Policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


async def test_unknown_static_files_and_services_are_404(
    open_console: TestClient[web.Request, web.Application],
) -> None:
    assert (await open_console.get("/static/../_web.py")).status == 404
    assert (await open_console.get("/static/index.html.bak")).status == 404
    answer = await open_console.get("/api/v1/services/nobody/instances")
    assert answer.status == 404 and "nobody" in (await answer.json())["error"]


async def test_without_the_token_there_is_a_login_form_and_no_data(
    guarded: TestClient[web.Request, web.Application],
) -> None:
    page = await guarded.get("/")
    assert page.status == 401 and 'action="/login"' in await page.text()
    for path in ("/api/v1/services", "/api/v1/services/user/instances", "/api/v1/events"):
        answer = await guarded.get(path)
        assert answer.status == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
    wrong = await guarded.get("/api/v1/services", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    forged = await guarded.get("/api/v1/services", cookies={COOKIE: TOKEN})
    assert forged.status == 401  # the cookie holds an HMAC of the token, not the token


async def test_the_bearer_header_opens_the_api(
    guarded: TestClient[web.Request, web.Application],
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    answer = await guarded.get("/api/v1/services", headers=headers)
    assert answer.status == 200
    assert (await answer.json())["services"] in ([], [{"name": "user", "instance_count": 1}])


async def test_the_login_form_sets_a_strict_http_only_cookie(
    guarded: TestClient[web.Request, web.Application],
) -> None:
    refused = await guarded.post("/login", data={"token": "nope"}, allow_redirects=False)
    assert refused.status == 401 and COOKIE not in refused.cookies
    accepted = await guarded.post("/login", data={"token": TOKEN}, allow_redirects=False)
    assert accepted.status == 303 and accepted.headers["Location"] == "/"
    cookie = accepted.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and TOKEN not in cookie.value
    page = await guarded.get("/", cookies={COOKIE: cookie.value})
    assert page.status == 200 and 'id="services"' in await page.text()


async def test_a_locked_console_shows_nothing() -> None:
    store = MemoryStore(initial_revision=100)
    app = web.Application()
    for route in console_routes(ConsoleModel(store), None, locked="reads need --auth"):
        app.router.add_route(route.method, route.path, route.handler)
    async with TestClient(TestServer(app)) as client:
        for path in ("/", "/api/v1/services", "/api/v1/services/user/instances"):
            answer = await client.get(path)
            assert answer.status == 403
            assert (await answer.json())["error"] == "the console is off: reads need --auth"
