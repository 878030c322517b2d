"""Free loopback ports, for the few programs that cannot bind port 0 and report it
(etcd, the supervisor's fixed ports).

A port probed free can be taken before the program binds it: callers that can,
retry (see :func:`harness.running_platform`).
"""

from __future__ import annotations

import contextlib
import socket

__all__ = ["free_port", "free_ports"]


def free_port() -> int:
    """One TCP port on 127.0.0.1 that was free a moment ago. Example: ``free_port() > 0``."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free right now (bound together, then released)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
