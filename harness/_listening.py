"""The ``<name> listening on HOST:PORT`` line every Switchboard server prints once it serves.

``services.runtime.ListeningHook`` writes it (as a log record, or on stderr when
INFO is off); a process started on port 0 is only reachable through it. Its
forms::

    user listening on 127.0.0.1:41234
    user listening on 127.0.0.1:41234 (http 127.0.0.1:41235)
    registry listening on [::1]:41234 (http [::1]:41235), console http://[::1]:41235/
    user listening on 127.0.0.1:41234 with TLS
    user listening on 127.0.0.1:41234 with mutual TLS (clients need a certificate ...)

The name is optional (the client tests' fake server prints ``listening on ...``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Listening", "parse_listening"]

_LINE = re.compile(
    r"(?:(?P<name>[\w.\-]+) )?listening on (?P<host>\[[0-9a-fA-F:.]+\]|[\w.\-]+):(?P<port>\d+)"
    r"(?: \(http (?P<http>[^)\s]+)\))?"
    r"(?P<rest>[^\n]*)"
)
_CONSOLE = re.compile(r"console (https?://[^\s\"',]+)")


@dataclass(frozen=True)
class Listening:
    """What one listening line says: who, where, and how to reach it.

    Example: ``parse_listening("user listening on 127.0.0.1:5 (http 127.0.0.1:6)")``
    is ``Listening("user", "127.0.0.1", 5, http="127.0.0.1:6")``.
    """

    name: str
    host: str
    port: int
    http: str | None = None
    console: str | None = None
    tls: str = "none"
    """``none``, ``tls`` or ``mtls``."""

    @property
    def address(self) -> str:
        """``HOST:PORT`` as printed (IPv6 hosts keep their brackets)."""
        return f"{self.host}:{self.port}"


def parse_listening(text: str) -> Listening | None:
    """The first listening line in ``text`` (any log format around it), or None."""
    match = _LINE.search(text)
    if match is None:
        return None
    rest = match["rest"]
    console = _CONSOLE.search(rest)
    tls = "mtls" if "with mutual TLS" in rest else "tls" if "with TLS" in rest else "none"
    return Listening(
        name=match["name"] or "",
        host=match["host"],
        port=int(match["port"]),
        http=match["http"],
        console=console[1] if console else None,
        tls=tls,
    )
