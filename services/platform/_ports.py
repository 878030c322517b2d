"""Is every port the platform needs free? Asked before anything starts, answered all at once.

The probe binds the way gRPC's server binds: with ``SO_REUSEADDR``. Without it,
a port whose last server was killed keeps failing for a minute (the kernel
holds the server side of each closed connection in TIME_WAIT), although the
gRPC server itself would bind fine. A port with a listener is busy either way.

Example::

    busy = busy_ports("127.0.0.1", {"registry": 50051, "web": 50052})
    # [BusyPort(name="web", port=50052, reason="Address already in use")]
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["BusyPort", "busy_ports", "port_is_free"]


@dataclass(frozen=True)
class BusyPort:
    """A port some process already holds, and what ``bind`` said."""

    name: str
    port: int
    reason: str


def port_is_free(host: str, port: int) -> str | None:
    """None if a gRPC server could bind ``host:port`` now, else the reason it could not.

    Example: ``port_is_free("127.0.0.1", 50051)`` is ``None`` when nothing listens there.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As gRPC does: TIME_WAIT left by a killed server must not count as "busy".
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def busy_ports(host: str, ports: Mapping[str, int]) -> list[BusyPort]:
    """Every port of ``ports`` (process name -> port) that is busy on ``host``."""
    busy = []
    for name, port in ports.items():
        reason = port_is_free(host, port)
        if reason is not None:
            busy.append(BusyPort(name, port, reason))
    return busy
