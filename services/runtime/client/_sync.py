"""A blocking facade over the async client, for scripts and REPLs.

The async :class:`Client` runs on an event loop in a background thread; each
blocking call hands a coroutine to that loop and waits for its result. The
typed clients come back wrapped: their coroutine methods block, their watch
methods return plain iterators. Everything else (deadlines, retries, errors)
is the async client's.

Example::

    with SyncClient(ClientConfig.from_env()) as client:
        greeter = client.typed(GreeterClient)     # from services.greeter.client
        reply = greeter.say_hello(name="Ada")
        print(reply.message)
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

from services.runtime.client._client import Client, ClientConfig
from services.runtime.client._typed import RegistryClient, TypedClient

__all__ = ["SyncClient", "SyncProxy"]

T = TypeVar("T")
W = TypeVar("W")
C = TypeVar("C", bound=TypedClient)


class SyncClient:
    """A :class:`Client` you call without ``await`` (one loop thread per SyncClient)."""

    def __init__(self, config: ClientConfig | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="switchboard-sync-client", daemon=True
        )
        self._thread.start()
        self._client = self.run(_make_client(config))

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the client's loop and return its result (or raise its error)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def call(
        self, service: str, method: str, request: Message, *, timeout_s: float | None = None
    ) -> Any:
        """One unary call by full method name. Example:
        ``client.call("greeter", "/helloworld.Greeter/SayHello", req)``."""
        return self.run(self._call(service, method, request, timeout_s))

    async def _call(
        self, service: str, method: str, request: Message, timeout_s: float | None
    ) -> Any:
        conn = await self._client.connect(service)
        return await conn.call(method, request, timeout_s=timeout_s)

    def typed(self, client_type: type[C]) -> SyncProxy[C]:
        """A service's typed client, blocking. Example: ``client.typed(GreeterClient)``."""
        return SyncProxy(self.run(client_type.connect(self._client)), self)

    def registry(self) -> SyncProxy[RegistryClient]:
        """The registry's read client, blocking."""
        return SyncProxy(RegistryClient(self.run(self._client.registry())), self)

    def iterate(self, stream: AsyncIterator[T]) -> Iterator[T]:
        """Iterate over an async iterator from this thread, one item per loop round trip."""
        try:
            while True:
                try:
                    yield self.run(_next(stream))
                except StopAsyncIteration:
                    return
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                self.run(close())

    def close(self) -> None:
        """Close the client, stop the loop and its thread."""
        if self._loop.is_closed():
            return
        self.run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


class SyncProxy(Generic[W]):
    """Wraps an async object: coroutine methods block, async-iterator methods yield.

    Example: ``SyncProxy(greeter_client, sync_client).say_hello("ada")``.
    """

    def __init__(self, wrapped: W, owner: SyncClient) -> None:
        self._wrapped = wrapped
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._wrapped, name)
        if inspect.iscoroutinefunction(attribute):
            return _blocking(self._owner, attribute)
        if inspect.isasyncgenfunction(attribute):
            return _iterating(self._owner, attribute)
        return attribute


def _blocking(owner: SyncClient, method: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return owner.run(method(*args, **kwargs))

    return call


def _iterating(owner: SyncClient, method: Callable[..., Any]) -> Callable[..., Iterator[Any]]:
    def call(*args: Any, **kwargs: Any) -> Iterator[Any]:
        return owner.iterate(method(*args, **kwargs))

    return call


async def _make_client(config: ClientConfig | None) -> Client:
    return Client(config)  # built on the loop thread: its locks belong to that loop


async def _next(stream: AsyncIterator[T]) -> T:
    return await anext(stream)
