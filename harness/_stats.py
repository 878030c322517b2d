"""What a running process uses, from /proc: CPU time, memory, file descriptors.

Example: ``read_memory(os.getpid()).rss`` is this process's resident size in bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Memory", "open_fds", "read_cpu_ticks", "read_memory"]


@dataclass(frozen=True)
class Memory:
    """Resident memory of a process, in bytes: now (VmRSS) and at its peak (VmHWM)."""

    rss: int
    hwm: int


def read_cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` from /proc/<pid>/stat, in clock ticks (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def read_memory(pid: int) -> Memory:
    """VmRSS and VmHWM of ``pid`` in bytes (zeros if it is gone)."""
    values = {"VmRSS": 0, "VmHWM": 0}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return Memory(0, 0)
    for line in lines:
        key, _, rest = line.partition(":")
        if key in values:
            values[key] = int(rest.split()[0]) * 1024
    return Memory(values["VmRSS"], values["VmHWM"])


def open_fds(pid: int) -> int:
    """How many file descriptors ``pid`` holds now."""
    return len(os.listdir(f"/proc/{pid}/fd"))
