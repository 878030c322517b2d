"""A raw ADS client for tests: send DiscoveryRequests, read DiscoveryResponses, ACK, NACK.

Example::

    async with AdsStream(channel) as ads:
        await ads.subscribe(ENDPOINTS, ["user"])
        first = await ads.recv()
        await ads.ack(first)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from types import TracebackType

import grpc.aio
from google.rpc import status_pb2  # type: ignore[import-untyped, unused-ignore]

from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

__all__ = ["RECV_TIMEOUT_S", "AdsStream"]

RECV_TIMEOUT_S = 5.0


class AdsStream:
    """One StreamAggregatedResources call driven request by request."""

    def __init__(self, channel: grpc.aio.Channel, node_id: str = "test-node") -> None:
        self._requests: asyncio.Queue[discovery_pb2.DiscoveryRequest | None] = asyncio.Queue()
        self._node = base_pb2.Node(id=node_id, user_agent_name="tests")
        self._first = True
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        self.call = stub.StreamAggregatedResources(self._outgoing())
        # One reader for the call's life: cancelling a read would cancel the whole call.
        self._responses: asyncio.Queue[object] = asyncio.Queue()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for response in self.call:
                await self._responses.put(response)
        except BaseException as err:  # the call's end, handed to whoever reads next
            await self._responses.put(err)

    async def __aenter__(self) -> AdsStream:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.call.cancel()
        self._reader.cancel()

    async def _outgoing(self) -> AsyncIterator[discovery_pb2.DiscoveryRequest]:
        while (request := await self._requests.get()) is not None:
            yield request

    async def send(self, request: discovery_pb2.DiscoveryRequest) -> None:
        """Send one request as is (the node is added to the stream's first)."""
        if self._first:
            request.node.CopyFrom(self._node)
            self._first = False
        await self._requests.put(request)

    async def subscribe(
        self, type_url: str, names: Sequence[str], *, nonce: str = "", version: str = ""
    ) -> None:
        """Ask for ``names`` of ``type_url``."""
        await self.send(
            discovery_pb2.DiscoveryRequest(
                type_url=type_url, resource_names=names, response_nonce=nonce, version_info=version
            )
        )

    async def recv(self, timeout_s: float = RECV_TIMEOUT_S) -> discovery_pb2.DiscoveryResponse:
        """The next response (fails after ``timeout_s``)."""
        response = await asyncio.wait_for(self._responses.get(), timeout_s)
        if isinstance(response, BaseException):
            raise response
        assert isinstance(response, discovery_pb2.DiscoveryResponse), response
        return response

    async def ack(self, response: discovery_pb2.DiscoveryResponse, names: Sequence[str]) -> None:
        """Accept ``response`` and keep subscribing to ``names``."""
        await self.subscribe(
            response.type_url, names, nonce=response.nonce, version=response.version_info
        )

    async def nack(
        self, response: discovery_pb2.DiscoveryResponse, names: Sequence[str], message: str
    ) -> None:
        """Reject ``response`` with ``message`` (the previous version stays in use)."""
        await self.send(
            discovery_pb2.DiscoveryRequest(
                type_url=response.type_url,
                resource_names=names,
                response_nonce=response.nonce,
                error_detail=status_pb2.Status(code=3, message=message),
            )
        )

    async def close_requests(self) -> None:
        """Half-close: the client sends no more requests."""
        await self._requests.put(None)
