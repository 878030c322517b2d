"""Garbage on every port: the server hangs up at once, keeps serving, and nothing changes.

Each probe opens a fresh TCP connection to a real process (registry, user,
product) and sends bytes no gRPC client would: random bytes, an HTTP/1.1
request, the HTTP/2 preface followed by junk, a TLS ClientHello on a
plaintext port. The precise answer gRPC gives is its own SETTINGS frame and
then a closed connection: no stream is ever started (no HEADERS or DATA
frame comes back) and no HTTP/1.x text. Afterwards every process still
answers health checks as SERVING and its state is exactly what it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]

from services.runtime import ProductClient, RegistryClient, UserClient
from switchboard.product.v1 import product_pb2
from tests.reliability._support.platform import Platform, health_status, start_platform
from tests.reliability._support.procs import Launcher
from tests.reliability._support.proxy import split_frames

pytestmark = pytest.mark.e2e

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HANG_UP_S = 3.0
_SETTINGS, _PING, _GOAWAY, _WINDOW_UPDATE = 0x4, 0x6, 0x7, 0x8
CONNECTION_FRAMES = {_SETTINGS, _PING, _GOAWAY, _WINDOW_UPDATE}


def client_hello() -> bytes:
    """A real TLS ClientHello, as Python's ssl module sends it."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):  # it waits for the server's answer
        tls.do_handshake()
    return outgoing.read()


def probes() -> dict[str, bytes]:
    junk = random.Random(20260101).randbytes(4096)  # seeded: the same bytes every run
    return {
        "random bytes": junk[:512],
        "HTTP/1.1 request": b"GET /switchboard.user.v1.UserService/GetUser HTTP/1.1\r\n"
        b"Host: localhost\r\nConnection: keep-alive\r\n\r\n",
        "HTTP/1.1 upgrade to h2c": b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, "
        b"HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
        "HTTP/2 preface then junk": PREFACE + junk[512:1536],
        "TLS ClientHello": client_hello(),
    }


async def send_garbage(port: int, payload: bytes) -> tuple[bytes, float]:
    """Send ``payload`` on a fresh connection; return what came back before the hang-up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    received = b""
    try:
        writer.write(payload)
        async with asyncio.timeout(HANG_UP_S):
            while chunk := await reader.read(65536):
                received += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    except TimeoutError:
        raise AssertionError(f"connection still open after {HANG_UP_S} s") from None
    finally:
        writer.close()
    return received, loop.time() - started


def assert_hung_up_cleanly(answer: bytes) -> None:
    """Only connection-level HTTP/2 frames came back: no stream was started."""
    assert not answer.startswith(b"HTTP/"), answer[:80]
    buffer = bytearray(answer)
    frames = split_frames(buffer)
    assert not buffer, f"trailing bytes that are not an HTTP/2 frame: {bytes(buffer[:40])!r}"
    kinds = {frame[3] for frame in frames}
    assert kinds <= CONNECTION_FRAMES, f"frames of a stream came back: {sorted(kinds)}"


async def platform_state(platform: Platform) -> tuple[object, ...]:
    """Everything the platform holds that a client can see."""
    async with platform.client() as client:
        registry = RegistryClient(await client.registry())
        services = await registry.list_services()
        users = await (await UserClient.connect(client)).list_users(page_size=1000)
        products = await (await ProductClient.connect(client)).list_products(page_size=1000)
    instances = [(s.name, s.instance_count) for s in services.services]
    return instances, list(users.users), list(products.products)


async def seed(platform: Platform) -> None:
    async with platform.client() as client:
        users = await UserClient.connect(client)
        seller = await users.create_user(email="seller@example.com", display_name="Seller")
        products = await ProductClient.connect(client)
        price = product_pb2.Money(currency_code="EUR", amount_minor=1999)
        await products.create_product(
            sku="GARBAGE-1", name="Lamp", price=price, seller_id=seller.id, stock=3
        )


async def test_garbage_on_every_port_is_refused_and_changes_nothing(
    launcher: Launcher, tmp_path: Path
) -> None:
    platform = await start_platform(launcher, tmp_path, users=1, product=True)
    await seed(platform)
    before = await platform_state(platform)
    assert platform.product is not None
    procs = [platform.registry, *platform.users, platform.product]
    for proc in procs:
        for name, payload in probes().items():
            answer, took = await send_garbage(proc.port, payload)
            assert_hung_up_cleanly(answer)
            assert took < 1.0, f"{proc.module}: {name} took {took:.2f} s to refuse"
    for proc in procs:
        assert proc.running, f"{proc.module} died:\n{proc.log()[-2000:]}"
        assert await health_status(proc.address) == health_pb2.HealthCheckResponse.SERVING
        assert "Traceback" not in proc.log()
    assert await platform_state(platform) == before


async def test_many_garbage_connections_at_once(launcher: Launcher) -> None:
    """A burst of 200 garbage connections in parallel: refused, and the server still serves."""
    registry = await launcher.start("registry")
    payloads = list(probes().values())
    burst = [send_garbage(registry.port, payloads[i % len(payloads)]) for i in range(200)]
    for answer, _took in await asyncio.gather(*burst):
        assert_hung_up_cleanly(answer)
    assert await health_status(registry.address) == health_pb2.HealthCheckResponse.SERVING
    assert registry.running
    fds = registry.open_fds()
    assert fds < 64, f"garbage connections left {fds} descriptors open"
