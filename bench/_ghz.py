"""Drive a unary (or one-message streaming) gRPC method with ghz and read its JSON report.

ghz runs as a child of the bench, so it inherits the bench's core (the load
core); ``--cpus`` tells its Go runtime how many cores it has.

Example::

    call = GhzCall(proto=Path("protos/switchboard/user/v1/user_service.proto"),
                   call="switchboard.user.v1.UserService.GetUser", data='{"id": "u1"}',
                   import_paths=(Path("protos"),))
    rep = await run_ghz(ghz_path, "127.0.0.1:50052", call, GhzLoad(32, 3.0), tmp_dir)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._stats import Rep

__all__ = ["GhzCall", "GhzLoad", "error_summary", "parse_report", "run_ghz"]

_NS_PER_MS = 1e6
_SLACK_S = 30.0
_RUNS = itertools.count()


@dataclass(frozen=True)
class GhzCall:
    """What to call: the method, its proto, and the request as JSON (ghz templates allowed)."""

    proto: Path
    call: str
    data: str
    import_paths: tuple[Path, ...] = ()


@dataclass(frozen=True)
class GhzLoad:
    """How hard: concurrent workers, duration, optional fixed rate, cores, connections."""

    concurrency: int
    duration_s: float
    rps: int = 0
    cpus: int = 1
    connections: int = 1


def ghz_argv(
    ghz: Path, target: str, call: GhzCall, load: GhzLoad, output: Path, data_file: Path
) -> list[str]:
    """The ghz command line: plaintext, ``load.connections`` connections, late calls finished.

    The request JSON is read from ``data_file``; a JSON array there is sent
    round-robin, one element per call.
    """
    argv = [str(ghz), "--insecure", f"--proto={call.proto}", f"--call={call.call}"]
    if call.import_paths:
        argv.append("--import-paths=" + ",".join(str(p) for p in call.import_paths))
    if "{{" not in call.data:  # no template: spare ghz the per-call template work
        argv += ["--disable-template-functions", "--disable-template-data"]
    argv += [
        f"--data-file={data_file}",
        f"--concurrency={load.concurrency}",
        f"--duration={load.duration_s:.3f}s",
        # Calls in flight when the time is up are finished and counted (the time too):
        # ignoring them would undercount long calls, such as a stream of 100 renewals.
        "--duration-stop=wait",
        f"--connections={load.connections}",
        "--timeout=10s",
        f"--cpus={load.cpus}",
        "--format=json",
        f"--output={output}",
    ]
    if load.rps:
        argv.append(f"--rps={load.rps}")
    return [*argv, target]


async def run_ghz(
    ghz: Path, target: str, call: GhzCall, load: GhzLoad, work_dir: Path
) -> tuple[Rep, dict[str, int]]:
    """Run ghz once: the repetition it measured and its error messages with their counts.

    Raises RuntimeError with ghz's own words when it fails to run.
    """
    run = next(_RUNS)
    output, data_file = work_dir / f"ghz-{run}.json", work_dir / f"ghz-{run}-data.json"
    data_file.write_text(call.data)
    argv = ghz_argv(ghz, target, call, load, output, data_file)
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        said, _ = await asyncio.wait_for(process.communicate(), load.duration_s + _SLACK_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0 or not output.exists():
        raise RuntimeError(f"ghz failed ({process.returncode}): {said.decode()[-2000:]}")
    try:
        report = json.loads(output.read_text())
        return parse_report(report), error_summary(report)
    finally:
        for path in (output, data_file):
            with contextlib.suppress(OSError):
                path.unlink()


def parse_report(report: dict[str, Any]) -> Rep:
    """A repetition from ghz's JSON report: OK calls, other outcomes, percentiles in ms.

    Example: ``parse_report({"count": 10, "total": 1e9, "statusCodeDistribution": {"OK": 10},
    "latencyDistribution": [{"percentage": 50, "latency": 1e6}]}).calls == 10``.
    """
    codes: dict[str, int] = report.get("statusCodeDistribution") or {}
    ok = int(codes.get("OK", 0))
    errors = int(report.get("count", 0)) - ok
    by_pct = {
        int(row["percentage"]): float(row["latency"]) / _NS_PER_MS
        for row in report.get("latencyDistribution") or ()
    }
    return Rep(
        calls=ok,
        errors=max(errors, 0),
        elapsed_s=float(report.get("total", 0)) / 1e9,
        p50_ms=by_pct.get(50, 0.0),
        p90_ms=by_pct.get(90, 0.0),
        p99_ms=by_pct.get(99, 0.0),
        max_ms=float(report.get("slowest", 0)) / _NS_PER_MS,
    )


def error_summary(report: dict[str, Any]) -> dict[str, int]:
    """ghz's error messages and their counts (for the notes of a case)."""
    return {str(k): int(v) for k, v in (report.get("errorDistribution") or {}).items()}
