"""Watch fan-out: N watchers on one service (or key prefix), one change at a time.

Each watcher has its own stream, spread over a few connections (a server caps
streams per connection). Once every watcher has its initial answer, the writer
makes one change (a new instance; for etcd a Put of the same bytes) and notes
the time just before sending it; each watcher notes when the change reaches it.
The next change goes out once all watchers have it (or after a bound), so each
figure is the latency of one change to all watchers, not a queue. Latency
counts the generator's own time to read each message: 1,000 streams land on one
Python process, for registry and etcd alike.

Example::

    outcomes = await run_fanouts({"registry": (RegistryFanout(address, 10), [pid])}, spec)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

import grpc
import grpc.aio

from bench._lg_ops import CALL_TIMEOUT_S, bench_instance, etcd_key, etcd_prefix, own_channel
from bench._runner import TICKS_PER_S, Failures, sum_ticks
from bench._stats import Rep
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from switchboard.registry.v1 import registry_service_pb2 as rs
from switchboard.registry.v1 import registry_service_pb2_grpc as rs_grpc

__all__ = ["EtcdFanout", "FanoutSpec", "RegistryFanout", "Target", "XdsFanout", "run_fanouts"]

READY_TIMEOUT_S = 60.0
DELIVERY_TIMEOUT_S = 5.0
SERVICE = "fanout"
XDS_SERVICE = "fanout-xds"  # its own service: the Watch case's changes are not xDS's
_EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"


@dataclass(frozen=True)
class FanoutSpec:
    """How many watchers on how many connections; changes per repetition; repetitions."""

    watchers: int
    connections: int
    events: int
    reps: int
    gap_s: float


class Target(Protocol):
    """A store to watch: open one watcher's stream, and make one change."""

    channels: list[grpc.aio.Channel]
    writer_channel: grpc.aio.Channel

    def watch(self, channel: grpc.aio.Channel) -> AsyncIterator[list[str]]:
        """Yield the changed keys of each message; the first (ready) message yields []."""
        ...

    async def change(self, key: str) -> None:
        """Make one change that every watcher will see under ``key``."""


class RegistryFanout:
    """Watchers of RegistryService.Watch; a change is a Register of a new instance."""

    def __init__(self, address: str, connections: int) -> None:
        self.channels = [own_channel(address) for _ in range(connections)]
        self.writer_channel = own_channel(address)
        self._writer = rs_grpc.RegistryServiceStub(self.writer_channel)
        self._index = 0

    async def watch(self, channel: grpc.aio.Channel) -> AsyncIterator[list[str]]:
        call = rs_grpc.RegistryServiceStub(channel).Watch(rs.WatchRequest(service=SERVICE))
        try:
            async for message in call:
                if message.HasField("event"):
                    yield [message.event.instance.instance_id]
                else:
                    yield []
        finally:
            call.cancel()

    async def change(self, key: str) -> None:
        self._index += 1
        instance = bench_instance(SERVICE, self._index)
        instance.instance_id = key
        request = rs.RegisterRequest(instance=instance)
        request.ttl.seconds = 300
        await self._writer.Register(request, timeout=CALL_TIMEOUT_S)


class XdsFanout:
    """xDS subscribers: ADS streams following one ClusterLoadAssignment (EDS), each
    response ACKed as gRPC clients do; a change is a Register of a new instance.

    Changes go out one at a time and the service starts empty, so the n-th endpoint a
    subscriber sees is the n-th change: counting endpoints (not formatting 1,000 x N
    addresses in this one reader process) tells which change arrived.
    """

    def __init__(self, address: str, connections: int) -> None:
        self.channels = [own_channel(address) for _ in range(connections)]
        self.writer_channel = own_channel(address)
        self._writer = rs_grpc.RegistryServiceStub(self.writer_channel)
        self._index = 0
        self._keys: list[str] = []  # keys of the registered instances, in order

    async def watch(self, channel: grpc.aio.Channel) -> AsyncIterator[list[str]]:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
        request = discovery_pb2.DiscoveryRequest(type_url=_EDS, resource_names=[XDS_SERVICE])
        request.node.id = "bench"
        await call.write(request)
        known: int | None = None
        try:
            async for response in call:
                count = _endpoint_count(response)
                if known is None:
                    yield []  # ready: the first answer
                elif new := self._keys[known:count]:
                    yield new  # noted as arrived now, before this reader's own ACK
                known = count if known is None else max(known, count)
                ack = discovery_pb2.DiscoveryRequest(
                    type_url=_EDS,
                    resource_names=[XDS_SERVICE],
                    version_info=response.version_info,
                    response_nonce=response.nonce,
                )
                await call.write(ack)
        finally:
            call.cancel()

    async def change(self, key: str) -> None:
        self._index += 1
        instance = bench_instance(XDS_SERVICE, self._index)
        instance.instance_id = key
        self._keys.append(key)
        request = rs.RegisterRequest(instance=instance)
        request.ttl.seconds = 300
        await self._writer.Register(request, timeout=CALL_TIMEOUT_S)


def _endpoint_count(response: discovery_pb2.DiscoveryResponse) -> int:
    """How many endpoints an EDS response lists."""
    count = 0
    for packed in response.resources:
        assignment = endpoint_pb2.ClusterLoadAssignment()
        packed.Unpack(assignment)
        count += sum(len(locality.lb_endpoints) for locality in assignment.endpoints)
    return count


class EtcdFanout:
    """Watchers of etcd's Watch, one watch per stream; a change is a Put of an instance."""

    def __init__(self, address: str, connections: int, stubs: tuple[ModuleType, ModuleType]):
        self.pb, pb_grpc = stubs
        self.channels = [own_channel(address) for _ in range(connections)]
        self._watch_stub = pb_grpc.WatchStub
        self.writer_channel = own_channel(address)
        self._writer = pb_grpc.KVStub(self.writer_channel)
        self._index = 0

    async def watch(self, channel: grpc.aio.Channel) -> AsyncIterator[list[str]]:
        key, end = etcd_prefix(SERVICE)
        call = self._watch_stub(channel).Watch()
        create = self.pb.WatchCreateRequest(key=key, range_end=end)
        await call.write(self.pb.WatchRequest(create_request=create))
        try:
            async for message in call:
                yield [event.kv.key.decode().rsplit("/", 1)[-1] for event in message.events]
        finally:
            call.cancel()

    async def change(self, key: str) -> None:
        self._index += 1
        instance = bench_instance(SERVICE, self._index)
        instance.instance_id = key
        put = self.pb.PutRequest(key=etcd_key(SERVICE, key), value=instance.SerializeToString())
        await self._writer.Put(put, timeout=CALL_TIMEOUT_S)


@dataclass
class _Board:
    """Who has seen what, and when."""

    watchers: int
    sent: dict[str, float] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    seen: Counter[str] = field(default_factory=Counter)
    done: dict[str, asyncio.Event] = field(default_factory=dict)
    ready: int = 0
    all_ready: asyncio.Event = field(default_factory=asyncio.Event)

    def arrived(self, keys: list[str], now: float) -> None:
        if not keys:
            self.ready += 1
            if self.ready == self.watchers:
                self.all_ready.set()
        for key in keys:
            if key in self.sent:
                self.latencies[key].append(now - self.sent[key])
                self.seen[key] += 1
                if self.seen[key] == self.watchers:
                    self.done[key].set()

    def expect(self, key: str) -> asyncio.Event:
        self.latencies[key], self.done[key] = [], asyncio.Event()
        self.sent[key] = time.perf_counter()
        return self.done[key]


async def _watcher(
    target: Target, channel: grpc.aio.Channel, board: _Board, failures: Failures
) -> None:
    try:
        async for keys in target.watch(channel):
            board.arrived(keys, time.perf_counter())
    except asyncio.CancelledError:
        raise
    except Exception as err:  # a broken stream is a figure: its deliveries go missing
        failures.add(err)


@dataclass
class _Open:
    """One target with its watchers open."""

    target: Target
    pids: Sequence[int]
    board: _Board
    failures: Failures
    tasks: list[asyncio.Task[None]]
    ready_s: float = 0.0


async def _open(target: Target, spec: FanoutSpec, pids: Sequence[int]) -> _Open:
    """Start every watcher of ``target`` and wait (bounded) until each has its first answer."""
    board, failures, channels = _Board(spec.watchers), Failures(), target.channels
    tasks = [
        asyncio.create_task(_watcher(target, channels[i % len(channels)], board, failures))
        for i in range(spec.watchers)
    ]
    opened = _Open(target, pids, board, failures, tasks)
    started = time.perf_counter()
    await asyncio.wait_for(board.all_ready.wait(), READY_TIMEOUT_S)
    opened.ready_s = time.perf_counter() - started
    return opened


async def _close(opened: _Open) -> None:
    for task in opened.tasks:
        task.cancel()
    await asyncio.gather(*opened.tasks, return_exceptions=True)
    for channel in [*opened.target.channels, opened.target.writer_channel]:
        await channel.close()


async def _one_rep(opened: _Open, spec: FanoutSpec, rep: int, events: int) -> Rep:
    """``events`` changes, one at a time; every watcher's latency for each."""
    board, pids = opened.board, opened.pids
    ticks, window, latencies, missing = sum_ticks(pids), 0.0, list[float](), 0
    for event in range(events):
        key = f"ev-{rep}-{event}"
        done = board.expect(key)
        await opened.target.change(key)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), DELIVERY_TIMEOUT_S)
        got = board.latencies.pop(key)
        latencies += got
        missing += spec.watchers - len(got)
        window += max(got, default=DELIVERY_TIMEOUT_S)
        await asyncio.sleep(spec.gap_s)
    result = Rep.of_latencies(latencies, missing, window)
    return result.with_cpu(sum_ticks(pids) - ticks, TICKS_PER_S)


Outcome = tuple[list[Rep], Failures, dict[str, Any]]


async def run_fanouts(
    targets: Mapping[str, tuple[Target, Sequence[int]]], spec: FanoutSpec
) -> dict[str, Outcome]:
    """Open every target's watchers, then measure them in interleaved rounds.

    ``targets`` maps a name to the target and the pids whose CPU it costs. Each
    round makes ``spec.events`` changes on each target in turn (after one
    warm-up change each). A repetition's rate is deliveries per second of
    fan-out time: the sum over its changes of the time until the last watcher
    had it.
    """
    opened: dict[str, _Open] = {}
    try:
        for name, (target, pids) in targets.items():
            opened[name] = await _open(target, spec, pids)
        for state in opened.values():
            await _one_rep(state, spec, -1, 1)  # warm-up change, not measured
        reps: dict[str, list[Rep]] = {name: [] for name in opened}
        for rep in range(spec.reps):
            for name, state in opened.items():
                reps[name].append(await _one_rep(state, spec, rep, spec.events))
    finally:
        for state in opened.values():
            await _close(state)
    return {
        name: (reps[name], state.failures, {"watchers_ready_s": state.ready_s})
        for name, state in opened.items()
    }
