"""A small TCP fault proxy on loopback: pass, delay, blackhole, reset, or lose one reply.

Put it between a gRPC client and a server (``127.0.0.1:<proxy.port>`` →
upstream) and switch faults on and off while calls run:

* ``delay(s)``      every byte arrives ``s`` seconds late, in both directions;
* ``blackhole()``   bytes are held back (as on a cut link where TCP keeps
                    retransmitting); ``heal()`` delivers them, like a link coming back;
* ``reset()``       every open connection is reset (RST) at once;
* ``lose_next_reply()``  the next response the server *starts* to send (its first
                    HTTP/2 HEADERS frame on a stream: the handler has already
                    finished, so any write it made is committed) is dropped and
                    both sides are reset: the client never learns the outcome.

Server-to-client bytes are cut into whole HTTP/2 frames (plaintext only), so a
fault always falls on a frame boundary.

Example::

    proxy = FaultProxy("127.0.0.1", server_port)
    await proxy.start()
    proxy.blackhole(); ...; proxy.heal()
    await proxy.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time

__all__ = ["FaultProxy", "split_frames"]

_HEADERS = 0x1
_FRAME_HEADER = 9


def split_frames(buffer: bytearray) -> list[bytes]:
    """Remove and return the complete HTTP/2 frames at the start of ``buffer``.

    Example: ``split_frames(bytearray(b"\\0\\0\\0\\4\\0\\0\\0\\0\\0"))`` → one SETTINGS frame.
    """
    frames: list[bytes] = []
    while len(buffer) >= _FRAME_HEADER:
        size = _FRAME_HEADER + int.from_bytes(buffer[:3], "big")
        if len(buffer) < size:
            break
        frames.append(bytes(buffer[:size]))
        del buffer[:size]
    return frames


def _starts_a_reply(frame: bytes) -> bool:
    stream_id = int.from_bytes(frame[5:9], "big") & 0x7FFFFFFF
    return frame[3] == _HEADERS and stream_id != 0


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a crashed peer or a middlebox would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Link:
    """One proxied connection: two ordered pipes with a delay, a hold, and a reset."""

    def __init__(
        self,
        proxy: FaultProxy,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.upstream_closed_at: float | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._done: asyncio.Task[None] | None = None

    def start(self) -> None:
        up: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        down: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        self._tasks = [
            asyncio.create_task(self._read(self.client[0], up, frames=False)),
            asyncio.create_task(self._read(self.upstream[0], down, frames=True)),
            asyncio.create_task(self._write(up, self.upstream[1])),
            asyncio.create_task(self._write(down, self.client[1])),
        ]
        self._done = asyncio.create_task(self._forget_when_done())

    async def _forget_when_done(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.client[1].transport.abort()
        self.upstream[1].transport.abort()
        self.proxy.forget(self)

    async def _read(
        self,
        reader: asyncio.StreamReader,
        queue: asyncio.Queue[tuple[float, bytes] | None],
        *,
        frames: bool,
    ) -> None:
        try:
            if frames:
                await self._read_frames(reader, queue)
            else:
                while data := await reader.read(65536):
                    self.proxy.bytes_from_clients += len(data)
                    queue.put_nowait((time.monotonic(), data))
        except OSError:
            pass
        finally:
            queue.put_nowait(None)

    async def _read_frames(
        self, reader: asyncio.StreamReader, queue: asyncio.Queue[tuple[float, bytes] | None]
    ) -> None:
        """Server-to-client bytes, whole frames at a time; the reply to lose ends the link."""
        buffer = bytearray()
        try:
            while data := await reader.read(65536):
                buffer += data
                for frame in split_frames(buffer):
                    if self.proxy.should_lose(frame):
                        self.reset()
                        return
                    queue.put_nowait((time.monotonic(), frame))
        finally:
            self.upstream_closed_at = time.monotonic()
            self.proxy.on_upstream_closed()

    async def _write(
        self, queue: asyncio.Queue[tuple[float, bytes] | None], writer: asyncio.StreamWriter
    ) -> None:
        try:
            while (item := await queue.get()) is not None:
                arrived, data = item
                await self.proxy.wait_deliverable(arrived)
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.write_eof()

    def reset(self) -> None:
        _reset(self.client[1])
        _reset(self.upstream[1])

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._done is not None:
            await self._done


class FaultProxy:
    """A TCP proxy to ``upstream_host:upstream_port`` with switchable faults."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.connections = 0
        self.replies_lost = 0
        self.bytes_from_clients = 0
        self.upstream_closed = asyncio.Event()
        self._delay = 0.0
        self._open = asyncio.Event()
        self._open.set()
        self._lose_armed = False
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> int:
        """Listen on a free loopback port; return it."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    # --- faults ------------------------------------------------------------------

    def delay(self, seconds: float) -> None:
        """Deliver every byte ``seconds`` late (0: no delay)."""
        self._delay = seconds

    def blackhole(self) -> None:
        """Hold every byte back until :meth:`heal` (connections stay open)."""
        self._open.clear()

    def heal(self) -> None:
        """No more faults: held bytes flow again, no delay."""
        self._delay = 0.0
        self._lose_armed = False
        self._open.set()

    def reset(self) -> int:
        """Reset every open connection; return how many there were."""
        links = list(self._links)
        for link in links:
            link.reset()
        return len(links)

    def lose_next_reply(self) -> None:
        """Drop the next reply a server starts to send, and reset its connection."""
        self._lose_armed = True

    # --- used by the links --------------------------------------------------------

    def should_lose(self, frame: bytes) -> bool:
        if self._lose_armed and _starts_a_reply(frame):
            self._lose_armed = False
            self.replies_lost += 1
            return True
        return False

    def on_upstream_closed(self) -> None:
        self.upstream_closed.set()

    async def wait_deliverable(self, arrived: float) -> None:
        await self._open.wait()
        if self._delay > 0:
            # The fault itself: hold this chunk until its delayed delivery time.
            await asyncio.sleep(max(0.0, arrived + self._delay - time.monotonic()))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            upstream = await asyncio.open_connection(*self.upstream)
        except OSError:
            _reset(writer)
            return
        link = _Link(self, (reader, writer), upstream)
        self._links.add(link)
        link.start()

    def forget(self, link: _Link) -> None:
        self._links.discard(link)

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            await link.close()
        if self._server is not None:
            await self._server.wait_closed()
