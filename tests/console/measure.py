"""Page load time and payload of the console with 1,000 instances registered.

Starts a registry, registers 1,000 instances (10 services x 100, each with
three metadata labels and a 300 s lease) straight over gRPC, then opens the
console in headless Chromium and reports how long until all 1,000 rows are on
the page and how many bytes it took (the page, its static files and the first
SSE message, the snapshot). A measurement, not a test: speed is never asserted.

Example: ``python -m tests.console.measure`` (``make console-measure``).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp
import grpc.aio
from google.protobuf import duration_pb2

from harness import Launcher
from switchboard.registry.v1 import instance_pb2
from switchboard.registry.v1 import registry_service_pb2 as rs
from switchboard.registry.v1 import registry_service_pb2_grpc as rs_grpc
from tests.console._support import browser_page
from tests.observability._support import http_address

SERVICES = 10
PER_SERVICE = 100
_STATIC = ("/", "/static/app.js", "/static/style.css", "/static/favicon.svg")


async def register_many(address: str) -> None:
    """Register ``SERVICES * PER_SERVICE`` instances with a 300 s lease (nothing renews them)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = rs_grpc.RegistryServiceStub(channel)
        for s in range(SERVICES):
            calls = [
                stub.Register(
                    rs.RegisterRequest(
                        instance=instance_pb2.Instance(
                            service=f"svc-{s:02d}",
                            instance_id=f"svc-{s:02d}-instance-{i:03d}",
                            address=f"127.0.0.1:{20000 + s * PER_SERVICE + i}",
                            version="1.4.2",
                            metadata={"zone": f"zone-{i % 3}", "weight": "10", "canary": "false"},
                        ),
                        ttl=duration_pb2.Duration(seconds=300),
                    ),
                    timeout=10,
                )
                for i in range(PER_SERVICE)
            ]
            await asyncio.gather(*calls)


async def snapshot_bytes(base: str) -> int:
    """Bytes of the events stream up to the end of its first message (the snapshot)."""
    async with aiohttp.ClientSession() as session, session.get(f"{base}/api/v1/events") as answer:
        received = b""
        async for chunk in answer.content.iter_any():
            received += chunk
            if b"event: snapshot" in received and received.endswith(b"\n\n"):
                return len(received)
    raise AssertionError("the stream ended before its snapshot")


async def static_bytes(base: str) -> int:
    """Bytes of the page and its static files."""
    total = 0
    async with aiohttp.ClientSession() as session:
        for path in _STATIC:
            async with session.get(base + path) as answer:
                total += len(await answer.read())
    return total


async def measure() -> None:
    with tempfile.TemporaryDirectory(prefix="console-measure-") as tmp:
        work = Path(tmp)
        async with Launcher(work) as launch:
            registry = await launch.start("registry", "--http-listen", "127.0.0.1:0")
            await register_many(registry.address)
            base = f"http://{http_address(registry)}"
            rows = "#instances tbody tr"
            async with browser_page(work / "profile") as (page, errors):
                start = time.perf_counter()
                await page.goto(base + "/")
                await page.wait_for_function(
                    f"document.querySelectorAll({rows!r}).length === {SERVICES * PER_SERVICE}",
                    timeout=30_000,
                )
                loaded_s = time.perf_counter() - start
                assert errors == [], errors
            page_bytes, snapshot = await static_bytes(base), await snapshot_bytes(base)
    print(f"instances: {SERVICES * PER_SERVICE} ({SERVICES} services)")
    print(f"page load until every row is shown: {loaded_s * 1000:.0f} ms")
    print(f"page + static files: {page_bytes / 1024:.1f} KiB")
    print(f"SSE snapshot: {snapshot / 1024:.1f} KiB (uncompressed)")
    print(f"total: {(page_bytes + snapshot) / 1024:.1f} KiB")


if __name__ == "__main__":
    asyncio.run(measure())
