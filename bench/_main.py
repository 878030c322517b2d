"""The ``python -m bench`` command: run, write the report, print the tables.

Exit status: 0 when every case ran (whatever the speeds: a target that falls
short is a finding, not a failure), 1 when some case could not run, 130 on
Ctrl-C. Speeds are judged in the report, never by the exit status.

Example::

    python -m bench              # full run
    BENCH_QUICK=1 python -m bench --out /tmp/results
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench._config import REPO, BenchConfig
from bench._report import build_report, render_markdown, write_report
from bench._run import GHZ, NOT_SELECTED, run_sync

__all__ = ["main"]

DEFAULT_OUT = REPO / "bench" / "results"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench; print the markdown tables; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where latest.* go")
    parser.add_argument("--quick", action="store_true", help="same as BENCH_QUICK=1")
    ns = parser.parse_args(argv)
    config = BenchConfig.quick() if ns.quick else BenchConfig.from_env()
    logs = ns.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started, clock = time.strftime("%Y-%m-%d %H:%M:%S %Z"), time.monotonic()
    try:
        results, facts = run_sync(config, logs)
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("bench interrupted; every process it started has been stopped", file=sys.stderr)
        return 130
    facts = {**facts, "cores": os.cpu_count()}
    report = build_report(
        config, results, facts, started=started, seconds=time.monotonic() - clock, ghz=GHZ
    )
    json_path, md_path = write_report(report, ns.out)
    print(render_markdown(report))
    print(f"wrote {json_path} and {md_path} (process logs in {logs})", file=sys.stderr)
    return 0 if all(r.ran or r.error == NOT_SELECTED for r in results.values()) else 1
