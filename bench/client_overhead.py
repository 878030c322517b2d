"""Client overhead benchmark: raw grpcio stub vs Connection.call, same in-process server.

Run: ``.venv/bin/python -m bench.client_overhead [calls] [concurrency] [rounds]``. Prints
the median calls/s and CPU per call of each, their ratio and the client's extra CPU.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import grpc

from harness import start_server
from harness.fakes import FakeUsers, users_service
from services.runtime.client._client import Client, ClientConfig
from services.user.client import GET_USER
from switchboard.user.v1 import user_service_pb2, user_service_pb2_grpc


async def _run(
    call: Callable[[], Awaitable[object]], calls: int, concurrency: int
) -> tuple[float, float]:
    """(calls per second, CPU microseconds per call) of ``calls`` calls, ``concurrency`` at once."""
    per_worker = calls // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            await call()

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    done = per_worker * concurrency
    rate = done / (time.perf_counter() - start)
    return rate, (time.process_time() - cpu) / done * 1e6


async def main(calls: int, concurrency: int, rounds: int) -> None:
    server = await start_server([users_service(FakeUsers())])
    address = server.address
    channel = grpc.aio.insecure_channel(address)
    stub = user_service_pb2_grpc.UserServiceStub(channel)
    client = Client(ClientConfig(static={"user": (address,)}))
    conn = await client.connect("user")
    request = user_service_pb2.GetUserRequest(id="u1")

    def raw() -> Awaitable[object]:
        return stub.GetUser(request, timeout=5.0)

    def ours() -> Awaitable[object]:
        return conn.call(GET_USER, request)

    await _run(raw, 2000, concurrency)
    await _run(ours, 2000, concurrency)  # warm both
    # Alternate short rounds and take medians: the machine's noise hits both alike.
    results: dict[str, list[tuple[float, float]]] = {"raw": [], "client": []}
    for _ in range(rounds):
        results["raw"].append(await _run(raw, calls, concurrency))
        results["client"].append(await _run(ours, calls, concurrency))
    rate = {k: statistics.median(r for r, _ in v) for k, v in results.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in results.items()}
    for name in ("raw", "client"):
        print(f"{name:6s} {rate[name]:8.0f} calls/s  {cpu[name]:6.1f} us CPU/call (client+server)")
    print(
        f"ratio  {rate['client'] / rate['raw']:.3f}   "
        f"client overhead {cpu['client'] - cpu['raw']:+.1f} us CPU/call"
    )
    await client.close()
    await channel.close()
    await server.stop()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(*(args + [3000, 64, 9][len(args) :])))
