"""A hostile client as a separate process: PING floods or stream floods against one server.

Run as ``python -m tests.reliability._support.flood ping|streams HOST PORT SECONDS
CONNECTIONS``; it prints ``flooding`` once its first connection is up, then one JSON line
with what happened (connections made, GOAWAY frames by error code and debug
text, streams refused). A separate process
so that the flood's CPU is not the measuring test's CPU.

* ``ping``: each connection acknowledges the server's SETTINGS, then sends
  PINGs in bursts until the server sends GOAWAY or hangs up; then, after a
  short pause, reconnects (a client that pings too often, not a connection
  churner: the pause keeps this process from eating the CPU the test measures).
* ``streams``: each connection opens 4x the server's stream limit of Watch
  calls that never end, then keeps them open; refused streams are counted.

Example::

    python -m tests.reliability._support.flood ping 127.0.0.1 50051 3 4
    flooding
    {"connections": 12, "goaways": {"11:too_many_pings": 12}, "refused_streams": 0}
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter

from switchboard.registry.v1 import registry_service_pb2 as rs
from tests.reliability._support.rawh2 import RawH2

__all__ = ["main"]

WATCH = "/switchboard.registry.v1.RegistryService/Watch"
PING_BURST = 50
RECONNECT_PAUSE_S = 0.1
STREAMS_PER_CONNECTION = 64


async def ping_flood(host: str, port: int, until: float, stats: Counter[str]) -> None:
    """One abusive client: PING bursts until GOAWAY, then again on a new connection."""
    while time.monotonic() < until:
        conn = await RawH2.connect(host, port)
        _connected(stats)
        try:
            await conn.receive_until(lambda: False, 0.05)  # SETTINGS, acknowledged
            while not conn.closed and conn.goaway_code is None and time.monotonic() < until:
                for _ in range(PING_BURST):
                    conn.ping()
                await conn.flush(timeout_s=0.05)
                await conn.receive_until(conn.went_away, 0.01)
            if conn.goaway_code is not None:
                debug = conn.goaway_data.decode("ascii", "replace")
                stats[f"goaway {conn.goaway_code}:{debug}"] += 1
        finally:
            await conn.close()
        await asyncio.sleep(RECONNECT_PAUSE_S)


async def stream_flood(host: str, port: int, until: float, stats: Counter[str]) -> None:
    """One abusive client: far more never-ending streams than the server allows."""
    conn = await RawH2.connect(host, port)
    request = rs.WatchRequest(service="flood").SerializeToString()
    try:
        await conn.receive_until(lambda: False, 0.05)
        limit = conn.h2.remote_settings.max_concurrent_streams
        # Ignore the server's limit: we are hostile (h2 holds a new value until acknowledged).
        conn.h2.remote_settings.max_concurrent_streams = 2**31 - 1
        conn.h2.remote_settings.acknowledge()
        ids = [conn.start_call(WATCH, request) for _ in range(4 * min(limit, 64))]
        await conn.flush(timeout_s=0.5)
        _connected(stats)
        await conn.receive_until(lambda: time.monotonic() > until, until - time.monotonic())
        stats["refused_streams"] += sum(1 for i in ids if conn.replies[i].reset_code is not None)
        stats["streams"] += len(ids)
    finally:
        await conn.close()


def _connected(stats: Counter[str]) -> None:
    if not stats["connections"]:
        print("flooding", flush=True)
    stats["connections"] += 1


async def run(mode: str, host: str, port: int, seconds: float, connections: int) -> dict[str, int]:
    until = time.monotonic() + seconds
    stats: Counter[str] = Counter()
    flood = ping_flood if mode == "ping" else stream_flood
    await asyncio.gather(*(flood(host, port, until, stats) for _ in range(connections)))
    return dict(stats)


def main(argv: list[str]) -> None:
    mode, host, port, seconds, connections = argv
    result = asyncio.run(run(mode, host, int(port), float(seconds), int(connections)))
    print(json.dumps(result, sort_keys=True), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
