"""Log lines: text or JSON, with request and trace ids, and an access log off the slow path.

Every record carries the handled call's ``request_id`` and ``trace_id`` (when
there is one). ``json`` writes one object per line::

    {"time": "2026-12-01T23:59:01.123Z", "level": "INFO", "logger": "switchboard.access",
     "message": "...", "request_id": "5f0c...", "trace_id": "4bf9...",
     "method": "/greeter.v1.Greeter/SayHello", "code": "OK",
     "duration": 0.00031, "peer": "ipv4:127.0.0.1:50412"}

The access log (one line per call) does not go through ``logging`` once a
process has called :func:`configure_logging`: the line is formatted at once
and appended to a buffer that is written to stderr a moment later (or when
it fills), which costs a few microseconds instead of ~50. Successful calls
may be sampled (``--access-log sampled:N``, or ``errors``); failed ones are
always logged. Before :func:`configure_logging` (in-process tests) access
lines go through ``logging`` as before, so ``caplog`` sees them.

Example::

    configure_logging("INFO", log_format="json", access_log="sampled:10")
    ACCESS_LOG.record("/a.v1.S/Get", grpc.StatusCode.OK, 0.3, "rid", "ipv4:127.0.0.1:1")
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import IO, Any

import grpc

from services.runtime.config import access_log_sampling
from services.runtime.context import current_request_id
from services.runtime.tracing import current_trace_id

__all__ = ["ACCESS_LOG", "AccessLog", "JsonFormatter", "TextFormatter", "configure_logging"]

access_logger = logging.getLogger("switchboard.access")
_ROOT = logging.getLogger()
_FLUSH_AFTER_S = 0.1
_FLUSH_BYTES = 64 * 1024
_ACCESS_FIELDS = ("grpc_method", "grpc_code", "duration_ms", "peer")


def _iso_time(created: float) -> str:
    millis = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{millis:03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request_id, trace_id
    (and method, code, duration in seconds, peer for access-log records)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or current_request_id(),
            "trace_id": getattr(record, "trace_id", None) or current_trace_id(),
        }
        if hasattr(record, "grpc_method"):
            out.update(_access_fields(record))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, separators=(",", ":"))


def _access_fields(record: logging.LogRecord) -> dict[str, Any]:
    duration_ms = getattr(record, "duration_ms", 0.0)
    return {
        "method": getattr(record, "grpc_method", None),
        "code": getattr(record, "grpc_code", None),
        "duration": round(duration_ms / 1000, 6),
        "peer": getattr(record, "peer", None),
    }


class TextFormatter(logging.Formatter):
    """``time level logger message``, one line per record (tracebacks folded in), with
    ``request_id=`` and ``trace_id=`` appended inside a call when the message lacks them."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record).replace("\n", " | ")
        if hasattr(record, "grpc_method"):
            return line
        request_id = current_request_id()
        if request_id is not None and "request_id=" not in line:
            line += f" request_id={request_id}"
        trace_id = current_trace_id()
        if trace_id is not None:
            line += f" trace_id={trace_id}"
        return line


class AccessLog:
    """The access log: sampling, then a line through ``logging`` or straight to a buffer."""

    def __init__(self) -> None:
        self.every = 1  # log 1 in ``every`` successful calls; 0: none
        self._seen = 0
        self._json = False
        self._stream: IO[str] | None = None  # None: through ``logging``
        self._handlers: list[logging.Handler] = []  # root's handlers when the stream was set
        self._buffer: list[str] = []
        self._size = 0
        self._flush_handle: asyncio.TimerHandle | None = None
        self._stamp = (0, "")  # (second, its local time text): formatted once a second

    def configure(self, access_log: str, *, stream: IO[str] | None, json_lines: bool) -> None:
        """Sampling from ``access_log`` (``all|errors|sampled:N``); ``stream`` None keeps
        ``logging``. The stream is used only while the root logger keeps the handlers it
        has now: a handler added later (a test's log capture) gets the lines again."""
        self.flush()
        self.every = access_log_sampling(access_log)
        self._stream = stream
        self._handlers = list(_ROOT.handlers)
        self._json = json_lines

    def record(
        self, method: str, code: grpc.StatusCode, elapsed_ms: float, request_id: str, peer: str
    ) -> None:
        """Log one finished call (successes subject to sampling)."""
        if code is grpc.StatusCode.OK and self.every != 1:
            self._seen += 1
            if self.every == 0 or self._seen % self.every:
                return
        if self._stream is None or _ROOT.handlers != self._handlers:
            _through_logging(method, code, elapsed_ms, request_id, peer)
        elif access_logger.isEnabledFor(logging.INFO):
            self._append(self._line(method, code.name, elapsed_ms, request_id, peer))

    def flush(self) -> None:
        """Write what is buffered."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._buffer and self._stream is not None:
            self._stream.write("".join(self._buffer))
            self._stream.flush()
        self._buffer.clear()
        self._size = 0

    def _line(self, method: str, code: str, elapsed_ms: float, request_id: str, peer: str) -> str:
        now = time.time()
        trace_id = current_trace_id()
        if self._json:
            fields = {
                "time": _iso_time(now),
                "level": "INFO",
                "logger": "switchboard.access",
                "message": f"{method} {code}",
                "request_id": request_id,
                "trace_id": trace_id,
                "method": method,
                "code": code,
                "duration": round(elapsed_ms / 1000, 6),
                "peer": peer,
            }
            return json.dumps(fields, separators=(",", ":")) + "\n"
        second = int(now)
        if self._stamp[0] != second:
            self._stamp = (second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second)))
        stamp = self._stamp[1]
        traced = "" if trace_id is None else f" trace_id={trace_id}"
        return (
            f"{stamp},{int(now * 1000) % 1000:03d} INFO switchboard.access method={method} "
            f"code={code} duration_ms={elapsed_ms:.1f} request_id={request_id} "
            f"peer={peer}{traced}\n"
        )

    def _append(self, line: str) -> None:
        self._buffer.append(line)
        self._size += len(line)
        if self._size >= _FLUSH_BYTES:
            self.flush()
        elif self._flush_handle is None:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): write now
            self.flush()
            return
        self._flush_handle = loop.call_later(_FLUSH_AFTER_S, self.flush)


def _through_logging(
    method: str, code: grpc.StatusCode, elapsed_ms: float, request_id: str, peer: str
) -> None:
    if not access_logger.isEnabledFor(logging.INFO):
        return
    access_logger.info(
        "method=%s code=%s duration_ms=%.1f request_id=%s peer=%s",
        method,
        code.name,
        elapsed_ms,
        request_id,
        peer,
        extra={
            "grpc_method": method,
            "grpc_code": code.name,
            "duration_ms": elapsed_ms,
            "request_id": request_id,
            "peer": peer,
        },
    )


ACCESS_LOG = AccessLog()
"""The process's access log (the server wrapper records every call here)."""


def configure_logging(
    level: str | int = "INFO", *, log_format: str = "text", access_log: str = "all"
) -> None:
    """Log to stderr, one line per record, as ``text`` or ``json``; the access log on
    its fast path with ``access_log`` sampling.

    Example: ``configure_logging("DEBUG", log_format="json")``.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    ACCESS_LOG.configure(access_log, stream=sys.stderr, json_lines=log_format == "json")
