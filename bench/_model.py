"""What a case is and what it produced.

A :class:`CaseResult` holds every repetition as measured (none dropped), the
failures, any extra numbers (memory points, failover timings), and, if the case
could not run at all, why (``error``). Its summary figures are medians with
min–max.

Example::

    result = CaseResult("user.get.ghz", "GetUser (user service)", group="user",
                        generator="ghz", what="...", reps=reps)
    result.rate.median, result.p99.median
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench._stats import Figure, Rep

__all__ = ["SUMMARY_FIELDS", "CaseResult"]

SUMMARY_FIELDS = (
    "rate",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "server_cpu_us",
    "client_cpu_us",
)


@dataclass
class CaseResult:
    """One case: what it measures, and every repetition it measured."""

    key: str
    title: str
    group: str
    generator: str
    what: str
    unit: str = "calls/s"
    server: str = ""
    reps: list[Rep] = field(default_factory=list)
    failures: dict[str, Any] = field(default_factory=dict)
    peak_rss: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ran(self) -> bool:
        """True when the case produced at least one repetition or metric and no error."""
        return self.error is None and (bool(self.reps) or bool(self.metrics))

    @property
    def errors(self) -> int:
        """Failed calls over the measured repetitions."""
        return sum(rep.errors for rep in self.reps)

    def figure(self, name: str) -> Figure | None:
        """The median/min/max of one field of the repetitions (``rate``, ``p99_ms``, ...)."""
        return Figure.of([getattr(rep, name) for rep in self.reps])

    @property
    def rate(self) -> Figure | None:
        """Successful calls (renewals, deliveries) per second."""
        return self.figure("rate")

    @property
    def p99(self) -> Figure | None:
        """99th percentile latency in ms."""
        return self.figure("p99_ms")

    def to_json(self) -> dict[str, Any]:
        """Everything, with the summary figures next to the raw repetitions."""
        summary = {
            name: (figure.to_json() if (figure := self.figure(name)) else None)
            for name in ("rate", "p50_ms", "p90_ms", "p99_ms", "max_ms", "server_cpu_us")
        }
        summary["client_cpu_us"] = fig.to_json() if (fig := self.figure("client_cpu_us")) else None
        return {
            "key": self.key,
            "title": self.title,
            "group": self.group,
            "generator": self.generator,
            "what": self.what,
            "unit": self.unit,
            "server": self.server,
            "ran": self.ran,
            "error": self.error,
            "errors": self.errors,
            "failures": self.failures,
            "peak_rss_bytes": self.peak_rss,
            "summary": summary,
            "reps": [rep.to_json() | {"rate": rep.rate} for rep in self.reps],
            "metrics": self.metrics,
        }
