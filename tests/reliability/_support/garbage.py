"""Garbage on the wire: the probes, how to send them, and what the platform holds before/after.

Shared by the reliability and security suites (no test module imports another).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl

from services.product.client import ProductClient
from services.runtime import RegistryClient
from services.user.client import UserClient
from switchboard.product.v1 import product_pb2
from tests.reliability._support.proxy import split_frames
from tests.reliability._support.stack import Stack

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


async def platform_state(platform: Stack) -> tuple[object, ...]:
    """Everything the platform holds that a client can see."""
    async with platform.client() as client:
        registry = RegistryClient(await client.registry())
        services = await registry.list_services()
        users = await (await UserClient.connect(client)).list_users(page_size=1000)
        products = await (await ProductClient.connect(client)).list_products(page_size=1000)
    instances = [(s.name, s.instance_count) for s in services.services]
    return instances, list(users.users), list(products.products)


async def seed(platform: Stack) -> None:
    async with platform.client() as client:
        users = await UserClient.connect(client)
        seller = await users.create_user(email="seller@example.com", display_name="Seller")
        products = await ProductClient.connect(client)
        price = product_pb2.Money(currency_code="EUR", amount_minor=1999)
        await products.create_product(
            sku="GARBAGE-1", name="Lamp", price=price, seller_id=seller.id, stock=3
        )
