"""The report: ``bench/results/latest.json`` (everything) and ``latest.md`` (the tables).

Example::

    report = build_report(config, results, facts, started, seconds)
    write_report(report, Path("bench/results"))
    print(render_markdown(report))
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from bench._config import BenchConfig
from bench._etcd import etcd_binary, etcd_version
from bench._model import CaseResult
from bench._targets import MB, judge

__all__ = ["build_report", "render_markdown", "write_report"]

SETUP_NOTE = (
    "Servers run as shipped, with default flags: log level INFO (one access-log line per call, "
    "to a file), registry without a token, services' SQLite files in a temp dir on disk "
    "(synchronous=FULL); etcd single-member with its data dir on tmpfs (/dev/shm). Ratios "
    "compare cases measured in the same interleaved rounds by the same generator."
)

PEERS = (
    ("Renew a lease, one call", "registry.heartbeat.ghz", "etcd.keepalive_once.ghz", "rate"),
    ("Renew leases, 1 in flight per stream", "registry.keepalive.py", "etcd.keepalive.py", "rate"),
    (
        "Renew leases, 100 pipelined per stream",
        "registry.keepalive.ghz",
        "etcd.keepalive.ghz",
        "rate",
    ),
    ("Read 100 instances", "registry.resolve100.ghz", "etcd.range100.ghz", "rate"),
    ("Watch fan-out to 1,000: p99 ms", "registry.watch1000.py", "etcd.watch1000.py", "p99_ms"),
)


def _versions(ghz: Path) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("grpcio", "protobuf"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "missing"
    if ghz.exists():
        out = subprocess.run([str(ghz), "--version"], capture_output=True, text=True, timeout=10)
        versions["ghz"] = out.stdout.strip() or out.stderr.strip()
    binary = etcd_binary()
    versions["etcd"] = (
        etcd_version(binary).removeprefix("etcd Version: ") if binary else "not installed"
    )
    return versions


def build_report(
    config: BenchConfig,
    results: Mapping[str, CaseResult],
    facts: Mapping[str, Any],
    *,
    started: str,
    seconds: float,
    ghz: Path,
) -> dict[str, Any]:
    """The whole report as plain data."""
    targets = judge(results, facts.get("idle_rss", {}))
    return {
        "started": started,
        "seconds": round(seconds, 1),
        "config": config.to_json(),
        "machine": {"cores": facts.get("cores"), **facts.get("cpus", {})},
        "versions": _versions(ghz),
        "idle_rss_bytes": facts.get("idle_rss", {}),
        "missing": facts.get("missing", {}),
        "targets": [t.to_json() for t in targets],
        "cases": [result.to_json() for result in results.values()],
    }


def write_report(report: Mapping[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write latest.json and latest.md into ``out_dir``; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "latest.json", out_dir / "latest.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(render_markdown(report))
    return json_path, md_path


# --- markdown ----------------------------------------------------------------------------


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _span(summary: Mapping[str, Any] | None, digits: int = 0) -> str:
    if not summary:
        return "-"
    return (
        f"{_num(summary['median'], digits)} "
        f"({_num(summary['low'], digits)}-{_num(summary['high'], digits)})"
    )


def _med(summary: Mapping[str, Any] | None, digits: int = 2) -> str:
    return _num(summary["median"], digits) if summary else "-"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _targets(report: Mapping[str, Any]) -> list[str]:
    rows = [
        [t["name"], t["needs"], t["measured"], f"**{t['verdict']}**"] for t in report["targets"]
    ]
    return ["## Targets", "", *_table(["Target", "Needs", "Measured", "Result"], rows), ""]


def _case_row(case: Mapping[str, Any]) -> list[str]:
    s = case["summary"]
    if not case["ran"]:
        return [case["title"], case["generator"], "**did not run**", "-", "-", "-", "-", "-", "-"]
    rss = case["peak_rss_bytes"]
    latency = [_med(s["p50_ms"]), _med(s["p90_ms"]), _med(s["p99_ms"])]
    if case["group"] == "memory":
        latency = ["-", "-", "-"]
    return [
        case["title"],
        case["generator"],
        f"{_span(s['rate'])} {case['unit']}",
        *latency,
        _med(s["server_cpu_us"], 0),
        _num(rss / MB, 0) if rss else "-",
        str(case["errors"]),
    ]


def _cases(report: Mapping[str, Any]) -> list[str]:
    header = [
        "Case",
        "Load",
        "Rate: median (min-max)",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "Server CPU us/call",
        "Peak RSS MB",
        "Failed",
    ]
    rows = [_case_row(case) for case in report["cases"]]
    notes = [f"- **{c['title']}**: {c['error']}" for c in report["cases"] if c["error"]]
    return (
        ["## Cases", "", *_table(header, rows), "", *notes, ""]
        if notes
        else ["## Cases", "", *_table(header, rows), ""]
    )


def _by_key(report: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {case["key"]: case for case in report["cases"]}


def _peers(report: Mapping[str, Any]) -> list[str]:
    cases, rows = _by_key(report), []
    for work, ours_key, etcd_key, field in PEERS:
        ours, etcd = cases[ours_key]["summary"][field], cases[etcd_key]["summary"][field]
        ratio = (
            f"{ours['median'] / etcd['median']:.2f}x" if ours and etcd and etcd["median"] else "-"
        )
        digits = 1 if field == "p99_ms" else 0
        rows.append([work, _span(ours, digits), _span(etcd, digits), ratio])
    for size in (10_000, 50_000):
        ours, etcd = _rss_at(cases["memory.registry"], size), _rss_at(cases["memory.etcd"], size)
        ratio = f"{ours / etcd:.2f}x" if ours and etcd else "-"
        rows.append([f"RSS MB with {size:,} instances", _num(ours, 1), _num(etcd, 1), ratio])
    header = ["Same work", "Switchboard registry", "etcd", "Switchboard / etcd"]
    return ["## Registry vs etcd (same load shape)", "", *_table(header, rows), ""]


def _rss_at(case: Mapping[str, Any], size: int) -> float | None:
    for point in case["metrics"].get("points", []):
        if point["instances"] == size:
            return float(point["rss"]) / MB
    return None


OTHER_RATIOS = (
    (
        "GetUser on the user service vs raw echo (ghz): server-side cost",
        "user.get.ghz",
        "echo.aio.ghz",
        "rate",
    ),
    ("Raw echo: sync ThreadPool vs grpc.aio (ghz)", "echo.sync.ghz", "echo.aio.ghz", "rate"),
    (
        "GetUser p99 at 300/s: during ListUsers(1000) vs alone",
        "user.get.paced_list",
        "user.get.paced",
        "p99_ms",
    ),
    (
        "CreateProduct (with seller check) vs CreateUser",
        "product.create.ghz",
        "user.create.ghz",
        "rate",
    ),
)


def _paired(a: Mapping[str, Any], b: Mapping[str, Any], field: str) -> str:
    """Median (min-max) of the per-round ratios of one field of two cases."""
    ratios = [x[field] / y[field] for x, y in zip(a["reps"], b["reps"], strict=False) if y[field]]
    if not ratios:
        return "-"
    middle = statistics.median(ratios)
    return f"{middle:.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


def _others(report: Mapping[str, Any]) -> list[str]:
    cases, rows = _by_key(report), []
    for title, key_a, key_b, field in OTHER_RATIOS:
        a, b = cases[key_a], cases[key_b]
        digits = 1 if field == "p99_ms" else 0
        rows.append(
            [
                title,
                _span(a["summary"][field], digits),
                _span(b["summary"][field], digits),
                _paired(a, b, field),
            ]
        )
    header = ["Comparison", "First", "Second", "Ratio per round: median (min-max)"]
    return ["## Other ratios (same rounds)", "", *_table(header, rows), ""]


def _scaling(report: Mapping[str, Any]) -> list[str]:
    cases = _by_key(report)
    scale = [c for key, c in cases.items() if key.startswith("scale.user.")]
    rows = [
        [
            str(n),
            _span(case["summary"]["rate"]),
            _paired(case, scale[0], "rate"),
            _med(case["summary"]["p99_ms"]),
        ]
        for n, case in enumerate(scale, start=1)
    ]
    header = ["Instances", "calls/s", "vs 1 instance, per round", "p99 ms"]
    return ["## Scaling: GetUser via the client (same rounds)", "", *_table(header, rows), ""]


def _filled(report: Mapping[str, Any]) -> list[str]:
    cases = _by_key(report)
    ours, etcd = cases["memory.registry"], cases["memory.etcd"]
    sizes = sorted({p["instances"] for c in (ours, etcd) for p in c["metrics"].get("points", [])})
    rows = [
        [f"{size:,}", _num(_rss_at(ours, size), 1), _num(_rss_at(etcd, size), 1)] for size in sizes
    ]
    return _table(["Instances", "Registry RSS MB", "etcd RSS MB"], rows) if rows else []


def _memory(report: Mapping[str, Any]) -> list[str]:
    idle = report["idle_rss_bytes"]
    lines = [
        "## Memory",
        "",
        "Idle RSS: " + ", ".join(f"{name} {rss / MB:.1f} MB" for name, rss in sorted(idle.items())),
        "",
        *_filled(report),
        "",
    ]
    failover = _by_key(report)["failover.kill1of3"]["metrics"]
    if failover:
        worst = ", ".join(f"{v:.0f}" for v in failover.get("max_ms_around_kill_by_rep", []))
        p99s = ", ".join(f"{v:.0f}" for v in failover.get("p99_ms_around_kill_by_rep", []))
        lines += [
            "## Failover",
            "",
            "Calls in flight at each kill or started within 1 s after it: "
            f"p99 {p99s} ms; slowest {worst} ms (one figure per kill).",
            "",
        ]
    return lines


def _header(report: Mapping[str, Any]) -> list[str]:
    config, machine, versions = report["config"], report["machine"], report["versions"]
    pinning = (
        f"servers on cpu {machine['server']}, load on cpu {machine['load']}"
        if machine.get("pinned")
        else "not pinned (fewer than 2 cores or no taskset)"
    )
    return [
        f"# Switchboard bench ({config['mode']}) - {report['started']}",
        "",
        f"{config['reps']} repetitions of {config['duration_s']} s after {config['warmup_s']} s "
        f"warm-up, {config['concurrency']} concurrent calls, {pinning}; whole run "
        f"{report['seconds']} s. Figures: median (min-max) of the repetitions.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "",
        SETUP_NOTE,
        "",
    ]


def render_markdown(report: Mapping[str, Any]) -> str:
    """The tables a person reads: targets, cases, registry vs etcd, scaling, memory."""
    parts = [
        *_header(report),
        *_targets(report),
        *_cases(report),
        *_peers(report),
        *_others(report),
        *_scaling(report),
        *_memory(report),
        "## What each case measures",
        "",
        *(f"- **{c['title']}** ({c['generator']}): {c['what']}" for c in report["cases"]),
        "",
    ]
    return "\n".join(parts)
