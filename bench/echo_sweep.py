"""The raw echo on the sync thread-pool server vs grpc.aio, by connections (make bench-echo).

A fact to guide the next design choice (issue 17): which server model is faster
for a plain unary call here, and does it change with the number of client
connections? ghz drives ``GetUser`` on the two raw echo servers of
``bench/_echo.py`` (no interceptors, no storage) with 1, 10 and 50 connections,
50 concurrent workers. Both servers are pinned to the server core and ghz to the
load core when the machine has two; every round runs every (server,
connections) pair once, so machine noise lands on all pairs alike. The figure is
the median calls/s over the rounds, with the min-max, and sync/aio per round.

Example::

    python -m bench.echo_sweep            # 5 rounds of 2 s per pair
    BENCH_QUICK=1 python -m bench.echo_sweep
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench._config import REPO
from bench._ghz import GhzCall, GhzLoad, run_ghz
from bench._procs import Procs, plan_cpus
from bench._run import GHZ
from bench._stack import server_env

__all__ = ["main"]

CONNECTIONS = (1, 10, 50)
CONCURRENCY = 50
KINDS = ("sync", "aio")
PROTO = REPO / "protos"
CALL = GhzCall(
    proto=PROTO / "switchboard/user/v1/user_service.proto",
    call="switchboard.user.v1.UserService.GetUser",
    data=json.dumps({"id": "echo"}),
    import_paths=(PROTO,),
)


def _rounds_and_seconds() -> tuple[int, float]:
    return (3, 0.5) if os.environ.get("BENCH_QUICK") else (5, 2.0)


async def _sweep(work: Path) -> dict[tuple[str, int], list[float]]:
    """calls/s per (server kind, connections), one figure per round."""
    rounds, seconds = _rounds_and_seconds()
    rates: dict[tuple[str, int], list[float]] = {(k, c): [] for k in KINDS for c in CONNECTIONS}
    async with Procs(work / "logs", plan_cpus()) as procs:
        servers = {
            kind: await procs.start(
                f"echo-{kind}",
                [sys.executable, "-m", "bench._echo", "--kind", kind, "--listen", "127.0.0.1:0"],
                env=server_env(),
            )
            for kind in KINDS
        }
        warm = GhzLoad(CONCURRENCY, 0.5)
        for kind in KINDS:
            await run_ghz(GHZ, servers[kind].address, CALL, warm, work)
        for _ in range(rounds):
            for kind, connections in rates:
                load = GhzLoad(CONCURRENCY, seconds, connections=connections)
                rep, _errors = await run_ghz(GHZ, servers[kind].address, CALL, load, work)
                rates[kind, connections].append(rep.calls / rep.elapsed_s)
    return rates


def render(rates: dict[tuple[str, int], list[float]]) -> str:
    """The markdown table: calls/s of each server by connections, and sync/aio per round."""
    lines = [
        "| connections | sync (thread pool) calls/s | grpc.aio calls/s | sync / aio |",
        "|---|---|---|---|",
    ]
    for connections in CONNECTIONS:
        sync, aio = rates["sync", connections], rates["aio", connections]
        ratios = [s / a for s, a in zip(sync, aio, strict=True) if a > 0]
        lines.append(
            f"| {connections} | {statistics.median(sync):,.0f} ({min(sync):,.0f}-{max(sync):,.0f})"
            f" | {statistics.median(aio):,.0f} ({min(aio):,.0f}-{max(aio):,.0f})"
            f" | {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |"
        )
    return "\n".join(lines)


def main() -> int:
    """Run the sweep and print its table; exits 2 when ghz is missing."""
    if not GHZ.exists():
        print(f"{GHZ} is missing (run `make tools-ghz`)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "logs").mkdir()
        rates = asyncio.run(_sweep(work))
    print(
        f"ghz, {CONCURRENCY} concurrent workers, GetUser on the raw echo servers (bench/_echo.py)"
    )
    print(render(rates))
    return 0


if __name__ == "__main__":
    sys.exit(main())
