"""The console's HTTP routes: the page, its static files, the JSON API and the login.

Routes (all GET except the login form's POST):

``/``                                   the page (or the login form when a token is needed)
``/static/{name}``                      the page's script and style sheet (no data)
``/api/v1/services``                    ``{"revision": R, "services": [{name, instance_count}]}``
``/api/v1/services/{name}/instances``   ``{"revision": R, "service": {...,"instances": [...]}}``
``/api/v1/events``                      Server-Sent Events: ``snapshot`` then ``service``,
                                        ``change``, ``renewals``, ``health`` messages
``/login`` (POST, form field ``token``) sets the session cookie and goes back to ``/``

With a token configured every data route needs ``Authorization: Bearer <token>``
or the cookie the login form sets (HttpOnly, SameSite=Strict; its value is an
HMAC of the token, never the token). Every response carries a strict
Content-Security-Policy: scripts only from this origin, no inline script.

Example: ``routes = console_routes(model, token="s3cret")``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from registry.console._model import ConsoleModel
from services.runtime import HttpRoute

__all__ = ["COOKIE", "SECURITY_HEADERS", "console_routes"]

COOKIE = "switchboard_console"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_STATIC_TYPES = {
    "app.js": "text/javascript",
    "style.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
_KEEPALIVE_S = 15.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _asset(name: str) -> bytes:
    return resources.files("registry.console").joinpath("static", name).read_bytes()


def console_routes(
    model: ConsoleModel, token: str | None, *, locked: str | None = None
) -> list[HttpRoute]:
    """The console's routes on the registry's HTTP side port.

    ``locked`` (a reason) turns the console off: every data route answers 403
    with it. For a registry whose reads need an identity the console cannot check.
    """
    if locked is not None:
        return _locked_routes(locked)
    gate = _Gate(token)
    static = {name: _asset(name) for name in _STATIC_TYPES}
    index, login = _asset("index.html"), _asset("login.html")

    async def page(request: web.Request) -> web.Response:
        if not gate.allows(request):
            return _html(login, status=401)
        return _html(index)

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in static:
            raise web.HTTPNotFound(headers=SECURITY_HEADERS)
        return web.Response(
            body=static[name], content_type=_STATIC_TYPES[name], headers=SECURITY_HEADERS
        )

    async def services(request: web.Request) -> web.Response:
        state = model.state()
        listed = [{k: s[k] for k in ("name", "instance_count")} for s in state["services"]]
        return _json({"revision": state["revision"], "services": listed})

    async def instances(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in model.services:
            return _json({"error": f"no service named {name!r} has live instances"}, 404)
        return _json({"revision": model.revision, "service": model.service_json(name)})

    async def events(request: web.Request) -> web.StreamResponse:
        return await _stream(model, request)

    return [
        HttpRoute("GET", "/", page),
        HttpRoute("GET", "/static/{name}", asset),
        HttpRoute("POST", "/login", gate.login),
        HttpRoute("GET", "/api/v1/services", gate.guard(services)),
        HttpRoute("GET", "/api/v1/services/{name}/instances", gate.guard(instances)),
        HttpRoute("GET", "/api/v1/events", gate.guard(events)),
    ]


def _locked_routes(reason: str) -> list[HttpRoute]:
    """The console's paths, each answering 403 with ``reason`` (no data, no page)."""

    async def refuse(request: web.Request) -> web.Response:
        return _json({"error": f"the console is off: {reason}"}, 403)

    paths = ["/", "/api/v1/services", "/api/v1/services/{name}/instances", "/api/v1/events"]
    return [HttpRoute("GET", path, refuse) for path in paths]


class _Gate:
    """Who may read: everyone without a token, else a bearer header or the login cookie."""

    def __init__(self, token: str | None) -> None:
        self._token = token
        self._cookie = None if token is None else _cookie_value(token)

    def allows(self, request: web.Request) -> bool:
        if self._token is None or self._cookie is None:
            return True
        header = request.headers.get("Authorization", "")
        bearer = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        cookie = request.cookies.get(COOKIE, "")
        return _same(bearer, self._token) or _same(cookie, self._cookie)

    def guard(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not self.allows(request):
                headers = {**SECURITY_HEADERS, "WWW-Authenticate": "Bearer"}
                body = {"error": "this registry needs its token: Authorization: Bearer <token>"}
                return web.json_response(body, status=401, headers=headers)
            return await handler(request)

        return guarded

    async def login(self, request: web.Request) -> web.Response:
        """Check the form's token; on success set the cookie and go back to the page."""
        form = await request.post()
        given = form.get("token", "")
        if self._token is None or self._cookie is None:
            raise web.HTTPSeeOther("/", headers=SECURITY_HEADERS)
        if not isinstance(given, str) or not _same(given.strip(), self._token):
            return _html(_asset("login.html").replace(b'hidden id="error"', b'id="error"'), 401)
        response = web.HTTPSeeOther("/", headers=SECURITY_HEADERS)
        response.set_cookie(COOKIE, self._cookie, httponly=True, samesite="Strict", path="/")
        raise response


def _cookie_value(token: str) -> str:
    """What the cookie holds: an HMAC of the token (a stolen cookie is not the token)."""
    return hmac.new(token.encode(), b"switchboard-console-v1", hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison (as bytes: compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(given.encode(), expected.encode())


def _html(body: bytes, status: int = 200) -> web.Response:
    return web.Response(
        body=body,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers=SECURITY_HEADERS,
    )


def _json(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers=SECURITY_HEADERS)


async def _stream(model: ConsoleModel, request: web.Request) -> web.StreamResponse:
    """The SSE stream: the whole state first, then each change as it happens.

    A page that falls too far behind (or a registry that stops) gets the stream
    ended; EventSource reconnects by itself and starts again from a snapshot.
    """
    response = web.StreamResponse(headers={**SECURITY_HEADERS, "Content-Type": "text/event-stream"})
    queue = model.subscribe()
    try:
        await response.prepare(request)
        await response.write(b"retry: 1000\n\n" + _event("snapshot", model.state()))
        while True:
            try:
                message = await asyncio.wait_for(queue.get(), _KEEPALIVE_S)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if message is None:
                break
            await response.write(_event(*message))
    except ConnectionResetError:
        pass  # the page went away (aiohttp may also cancel us: that propagates)
    finally:
        model.unsubscribe(queue)
    return response


def _event(kind: str, data: dict[str, Any]) -> bytes:
    payload = json.dumps(data, separators=(",", ":"))
    return f"event: {kind}\ndata: {payload}\n\n".encode()
