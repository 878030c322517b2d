"""The busy-port check: a SIGKILLed server's TIME_WAIT is not "busy"; a listener is.

Before the fix the check bound without ``SO_REUSEADDR``: for a minute after a
service was killed, ``make run`` refused to start ("is Switchboard already
running?") although gRPC itself binds such a port fine.
"""

from __future__ import annotations

import errno
import socket
import time
from pathlib import Path

import pytest

from harness import Launcher, free_port
from services.platform import busy_ports, port_is_free

pytestmark = pytest.mark.e2e

WAIT_S = 15.0
_TIME_WAIT = "06"  # state column of /proc/net/tcp
_ATTEMPTS = 5


def time_wait_on(port: int) -> bool:
    """True if a TCP socket with local port ``port`` is in TIME_WAIT (from /proc/net/tcp*).

    tcp6 too: gRPC listens on a dual-stack socket, so its IPv4 connections show there.
    """
    tables = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
    for line in (row for table in tables for row in table.read_text().splitlines()[1:]):
        fields = line.split()
        if int(fields[1].rpartition(":")[2], 16) == port and fields[3] == _TIME_WAIT:
            return True
    return False


def killed_server_port(sync_launcher: Launcher) -> int | None:
    """Start a registry, connect, SIGKILL it; its port if a TIME_WAIT is left there, else None.

    The kernel closes a killed server's connections with FIN, or with RST if bytes it had
    not read were still queued (leaving nothing). The server's side reaches TIME_WAIT once
    the client answers with its own FIN, and only if the client sends nothing after the
    server's FIN (a grpc channel may: a GOAWAY on close, under load, draws an RST). So the
    client is a raw socket that sends nothing: it waits for the server's SETTINGS (the
    connection is accepted), reads to the end after the kill, then closes.
    """
    port = free_port()
    server = sync_launcher.prepare("registry").start_sync(port)
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as client:
        assert client.recv(65536), "the server sent no SETTINGS"
        server.kill()
        server.wait_exit_sync(WAIT_S)
        while client.recv(65536):  # to the server's FIN: nothing unread when we close
            pass
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        if time_wait_on(port):
            return port
        time.sleep(0.02)
    return None


def test_a_sigkilled_servers_time_wait_does_not_count_as_busy(sync_launcher: Launcher) -> None:
    ports = (killed_server_port(sync_launcher) for _ in range(_ATTEMPTS))
    port = next((p for p in ports if p is not None), None)
    assert port is not None, f"no TIME_WAIT after {_ATTEMPTS} killed servers"

    with socket.socket() as plain, pytest.raises(OSError) as refused:
        plain.bind(("127.0.0.1", port))  # the old check: refused for a minute
    assert refused.value.errno == errno.EADDRINUSE

    assert port_is_free("127.0.0.1", port) is None
    assert busy_ports("127.0.0.1", {"registry": port}) == []
    sync_launcher.prepare("registry").start_sync(port)  # gRPC binds it, too


def test_a_listening_port_is_busy_and_named() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        other = free_port()
        busy = busy_ports("127.0.0.1", {"registry": port, "user": other})
    assert [(b.name, b.port) for b in busy] == [("registry", port)]
    assert "in use" in busy[0].reason
