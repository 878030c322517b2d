"""What one repetition measured, and how repetitions add up to a figure.

Every figure is the median of the repetitions, shown with their min and max;
no repetition is ever dropped.

Example::

    rep = Rep.of_latencies(latencies_s, errors=0, elapsed_s=3.0)
    figure = Figure.of([r.rate for r in reps])      # median, low, high
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = ["Figure", "Rep", "percentile"]


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 for none).

    Example: ``percentile([1, 2, 3, 4], 50) == 2``.
    """
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


@dataclass(frozen=True)
class Rep:
    """One repetition: successful calls, failures, wall time, latency percentiles (ms).

    ``server_cpu_us`` is the server processes' CPU time per successful call;
    ``client_cpu_us`` the load generator's own, when it can tell.
    """

    calls: int
    errors: int
    elapsed_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float = 0.0
    server_cpu_us: float | None = None
    client_cpu_us: float | None = None

    @property
    def rate(self) -> float:
        """Successful calls per second."""
        return self.calls / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @classmethod
    def of_latencies(cls, latencies_s: Iterable[float], errors: int, elapsed_s: float) -> Rep:
        """A repetition from per-call latencies in seconds (successful calls only)."""
        ordered = sorted(latencies_s)
        ms = [1000 * value for value in ordered]
        return cls(
            calls=len(ordered),
            errors=errors,
            elapsed_s=elapsed_s,
            p50_ms=percentile(ms, 50),
            p90_ms=percentile(ms, 90),
            p99_ms=percentile(ms, 99),
            max_ms=ms[-1] if ms else 0.0,
        )

    def with_cpu(self, server_ticks: int, ticks_per_s: int, client_s: float | None = None) -> Rep:
        """This repetition with CPU per call filled in from tick and second deltas."""
        per_call = 1e6 / self.calls if self.calls else 0.0
        return replace(
            self,
            server_cpu_us=server_ticks / ticks_per_s * per_call,
            client_cpu_us=None if client_s is None else client_s * per_call,
        )

    def to_json(self) -> dict[str, Any]:
        """The fields as a plain dict (the rate is derived, not stored)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rep:
        """The inverse of :meth:`to_json`."""
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


@dataclass(frozen=True)
class Figure:
    """Median of the repetitions, with min and max."""

    median: float
    low: float
    high: float
    values: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Figure | None:
        """The figure of the values that exist (None if there are none)."""
        present = [float(v) for v in values if v is not None]
        if not present:
            return None
        return cls(statistics.median(present), min(present), max(present), present)

    def to_json(self) -> dict[str, Any]:
        """A plain dict for the JSON report."""
        return asdict(self)
