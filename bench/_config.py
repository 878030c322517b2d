"""How long and how hard the bench runs: full (``make bench``) or quick (``BENCH_QUICK=1``).

Quick runs the same cases with fewer, shorter repetitions; every figure is still
the median of at least three repetitions.

Example::

    config = BenchConfig.from_env()       # BENCH_QUICK=1 -> BenchConfig.quick()
    config.reps, config.duration_s
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

__all__ = ["REPO", "BenchConfig"]

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class BenchConfig:
    """Every knob of a run; :meth:`full` and :meth:`quick` are the two presets."""

    mode: str
    reps: int
    warmup_s: float
    duration_s: float
    concurrency: int = 32
    paced_rps: int = 300
    paced_concurrency: int = 8
    list_concurrency: int = 2
    seed_users: int = 1200
    resolve_instances: int = 100
    watchers: int = 1000
    watch_connections: int = 10
    watch_events: int = 10
    watch_gap_s: float = 0.05
    memory_sizes: tuple[int, ...] = (1_000, 10_000, 50_000)
    memory_per_service: int = 1_000
    scaling_instances: int = 3
    failover_s: float = 3.0
    only: tuple[str, ...] = ()  # case-key prefixes to run (BENCH_ONLY); () = every case

    @classmethod
    def full(cls) -> BenchConfig:
        """``make bench``: five repetitions of 1.5 s after a 1 s warm-up."""
        return cls(mode="full", reps=5, warmup_s=1.0, duration_s=1.5)

    @classmethod
    def quick(cls) -> BenchConfig:
        """``make bench-quick``: three repetitions of 0.5 s after a 0.3 s warm-up.

        The memory cases fill to 10,000 instances, not 50,000 (filling is what
        takes the time there; the 10,000 point is the one with a target).
        """
        return cls(
            mode="quick",
            reps=3,
            warmup_s=0.3,
            duration_s=0.5,
            watch_events=3,
            failover_s=1.5,
            memory_sizes=(1_000, 10_000),
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BenchConfig:
        """Quick when ``BENCH_QUICK`` is set to anything but ``""``/``0``; ``BENCH_ONLY``
        (comma-separated case-key prefixes, e.g. ``registry_etcd,etcd``) picks the cases."""
        env = os.environ if environ is None else environ
        config = cls.quick() if env.get("BENCH_QUICK", "") not in ("", "0") else cls.full()
        only = tuple(p.strip() for p in env.get("BENCH_ONLY", "").split(",") if p.strip())
        return replace(config, only=only)

    def wants(self, key: str) -> bool:
        """Whether the case ``key`` is selected (every case when ``only`` is empty)."""
        return not self.only or key.startswith(self.only)

    def to_json(self) -> dict[str, Any]:
        """The knobs as plain data (recorded in the JSON report)."""
        return asdict(self)
