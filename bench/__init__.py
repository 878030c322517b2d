"""Switchboard's benchmark suite: ``python -m bench`` (``make bench``, ``make bench-quick``).

One run starts real processes on loopback (registry, user and product services,
raw grpcio echo servers, etcd), drives them with ghz and a Python grpc.aio load
generator on a core of their own, and writes ``bench/results/latest.json`` and
``latest.md``: every case's calls/s, latency percentiles, server CPU per call
and peak RSS, the issue's targets as PASS / FALLS SHORT, and etcd beside the
registry. ``BENCH_QUICK=1`` runs the same cases with fewer, shorter repetitions.

Example::

    from bench import main
    main([])            # the full run; BENCH_QUICK=1 in the environment for the quick one
"""

from __future__ import annotations

from bench._main import main

__all__ = ["main"]
