"""A raw HTTP/2 client (h2) for sending what no well-behaved gRPC client would.

It speaks just enough gRPC to make a unary call (``:path``, ``content-type``,
``te``, a length-prefixed message) and lets a test add absurd metadata, open
more streams than the server allows, or flood it with PINGs, then read exactly
what the server answered: a status, a stream reset, or a GOAWAY.

Example::

    conn = await RawH2.connect("127.0.0.1", port)
    reply = await conn.call("/grpc.health.v1.Health/Check", b"", headers=[("x-big", "a" * 10**6)])
    reply.refused          # True: the stream was reset, or the connection closed
    await conn.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions

__all__ = ["ENHANCE_YOUR_CALM", "RawH2", "Reply", "call_once", "grpc_message"]

ENHANCE_YOUR_CALM = 0xB
Header = tuple[str, str]


def grpc_message(payload: bytes) -> bytes:
    """One gRPC length-prefixed message (uncompressed).

    Example: ``grpc_message(b"") == b"\\x00\\x00\\x00\\x00\\x00"``.
    """
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


@dataclass
class Reply:
    """What came back on one stream (and whether the connection went away)."""

    headers: dict[str, str] = field(default_factory=dict)
    trailers: dict[str, str] = field(default_factory=dict)
    data: bytes = b""
    reset_code: int | None = None
    goaway_code: int | None = None
    closed: bool = False
    ended: bool = False

    @property
    def grpc_status(self) -> int | None:
        """The ``grpc-status`` (trailers, or headers of a trailers-only reply)."""
        raw = self.trailers.get("grpc-status", self.headers.get("grpc-status"))
        return None if raw is None else int(raw)

    @property
    def grpc_message(self) -> str:
        return self.trailers.get("grpc-message", self.headers.get("grpc-message", ""))

    @property
    def refused(self) -> bool:
        """The server did not serve the call: a non-OK status, a reset or a closed connection."""
        if self.reset_code is not None or self.goaway_code is not None or self.closed:
            return True
        return self.grpc_status not in (None, 0)


class RawH2:
    """One raw HTTP/2 connection to a gRPC server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        config = h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8", validate_outbound_headers=False
        )
        self.h2 = h2.connection.H2Connection(config=config)
        # Plain (not Huffman) header encoding: pure-Python Huffman takes seconds per MiB.
        self.h2.encoder.encode = functools.partial(self.h2.encoder.encode, huffman=False)  # type: ignore[method-assign]
        self.reader = reader
        self.writer = writer
        self.replies: dict[int, Reply] = {}
        self.goaway_code: int | None = None
        self.goaway_data: bytes = b""
        self.closed = False
        self.authority = ""

    @classmethod
    async def connect(cls, host: str, port: int) -> RawH2:
        """Open the TCP connection and send the client preface and SETTINGS."""
        reader, writer = await asyncio.open_connection(host, port)
        conn = cls(reader, writer)
        conn.authority = f"{host}:{port}"
        conn.h2.initiate_connection()
        await conn.flush()
        return conn

    async def flush(self, timeout_s: float = 0.0) -> None:
        """Hand what h2 has queued to the socket; wait up to ``timeout_s`` for it to drain.

        Never blocks longer: a server that stopped reading (it refused us) must
        not hang the test, and a server that hung up is not an error here.
        """
        data = self.h2.data_to_send()
        if data and not self.closed:
            try:
                self.writer.write(data)
            except OSError:
                self.closed = True
        if timeout_s > 0 and not self.closed:
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self.writer.drain()

    def start_call(self, path: str, message: bytes, headers: Sequence[Header] = ()) -> int:
        """Queue a unary call on a new stream (call :meth:`flush`); return the stream id."""
        stream_id: int = self.h2.get_next_available_stream_id()
        base = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", self.authority),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        self.h2.send_headers(stream_id, [*base, *headers])
        self.h2.send_data(stream_id, grpc_message(message), end_stream=True)
        self.replies[stream_id] = Reply()
        return stream_id

    async def call(
        self, path: str, message: bytes, headers: Sequence[Header] = (), timeout_s: float = 5.0
    ) -> Reply:
        """Make one unary call and wait (bounded) for its outcome."""
        stream_id = self.start_call(path, message, headers)
        await self.flush()
        reply = self.replies[stream_id]
        await self.receive_until(lambda: reply.ended or self.closed, timeout_s)
        reply.closed = reply.closed or (self.closed and not reply.ended)
        reply.goaway_code = self.goaway_code if not reply.ended else None
        return reply

    def went_away(self) -> bool:
        """True once the server sent GOAWAY or closed the connection."""
        return self.goaway_code is not None or self.closed

    def ping(self) -> None:
        """Queue one PING (call :meth:`flush`)."""
        self.h2.ping(os.urandom(8))

    async def receive_until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Read and handle frames until ``done()`` or the connection closes; False on timeout."""
        try:
            async with asyncio.timeout(timeout_s):
                while not done() and not self.closed:
                    await self.receive_once()
        except TimeoutError:
            return False
        return True

    async def receive_once(self) -> None:
        """Read one chunk from the socket and handle its frames."""
        try:
            data = await self.reader.read(65536)
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.closed = True
            return
        for event in events:
            self._handle(event)
        await self.flush()  # SETTINGS and PING acknowledgements, window updates

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ConnectionTerminated):
            self.goaway_code = int(event.error_code or 0)
            self.goaway_data = bytes(event.additional_data or b"")
            return
        stream_id = getattr(event, "stream_id", None)
        reply = self.replies.get(stream_id) if stream_id else None
        if reply is None:
            return
        if isinstance(event, h2.events.ResponseReceived):
            reply.headers.update(_text(event.headers))
        elif isinstance(event, h2.events.TrailersReceived):
            reply.trailers.update(_text(event.headers))
        elif isinstance(event, h2.events.DataReceived):
            reply.data += event.data
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            reply.reset_code = int(event.error_code)
            reply.ended = True
        elif isinstance(event, h2.events.StreamEnded):
            reply.ended = True

    async def close(self) -> None:
        """Close the socket (no GOAWAY: tests often close connections the server broke)."""
        self.closed = True
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def call_once(
    address: str, path: str, message: bytes, headers: Sequence[Header] = (), timeout_s: float = 5.0
) -> Reply:
    """One unary call on a connection of its own to ``host:port``, closed after.

    Example: ``await call_once("127.0.0.1:50051", path, b"", [("grpc-timeout", "2S")])``.
    """
    host, port = address.rsplit(":", 1)
    conn = await RawH2.connect(host, int(port))
    try:
        return await conn.call(path, message, headers, timeout_s)
    finally:
        await conn.close()


def _text(headers: Sequence[tuple[str | bytes, str | bytes]]) -> dict[str, str]:
    return {_str(k): _str(v) for k, v in headers}


def _str(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
