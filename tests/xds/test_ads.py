"""The ADS protocol as the registry serves it, against an in-process registry.

Resources (what gRFC A27 clients require), versions and nonces, pushes on
registration / deregistration / expiry, ACK and NACK, stale nonces, bad names,
a malformed request ending only its own stream, and reads without a token.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
import grpc.aio
import pytest

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import health_check_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.service.discovery.v3 import discovery_pb2
from registry import RegistrySettings
from registry.xds import ADS_SERVICE_NAME, CLUSTER, ENDPOINTS, LISTENER, ROUTE
from services.runtime import InvalidArgument, from_rpc_error
from tests.xds._ads import AdsStream
from tests.xds._support import MakeXdsRegistry, XdsRegistry

QUIET_S = 0.3  # how long "nothing more arrives" is watched for


def _endpoints(response: discovery_pb2.DiscoveryResponse) -> dict[str, list[str]]:
    """cluster -> ["ip:port HEALTH", ...] of an endpoints response."""
    found: dict[str, list[str]] = {}
    for packed in response.resources:
        assignment = endpoint_pb2.ClusterLoadAssignment()
        assert packed.Unpack(assignment)
        found[assignment.cluster_name] = [
            f"{e.endpoint.address.socket_address.address}:"
            f"{e.endpoint.address.socket_address.port_value} "
            f"{health_check_pb2.HealthStatus.Name(e.health_status)}"
            for locality in assignment.endpoints
            for e in locality.lb_endpoints
        ]
    return found


async def _nothing_more(ads: AdsStream) -> None:
    with pytest.raises(TimeoutError):
        await ads.recv(QUIET_S)


async def test_listener_route_cluster_are_what_grpc_clients_require(
    xds_registry: XdsRegistry,
) -> None:
    async with AdsStream(xds_registry.channel) as ads:
        await ads.subscribe(LISTENER, ["user"])
        lds = await ads.recv()
        await ads.subscribe(ROUTE, ["user"])
        rds = await ads.recv()
        await ads.subscribe(CLUSTER, ["user"])
        cds = await ads.recv()

    listener = listener_pb2.Listener()
    assert lds.type_url == LISTENER and lds.resources[0].Unpack(listener)
    manager = hcm_pb2.HttpConnectionManager()
    assert listener.name == "user" and listener.api_listener.api_listener.Unpack(manager)
    assert manager.rds.route_config_name == "user"
    assert manager.rds.config_source.HasField("ads")
    router = manager.http_filters[-1]
    assert router.typed_config.Is(router_pb2.Router.DESCRIPTOR)

    route = route_pb2.RouteConfiguration()
    assert rds.resources[0].Unpack(route) and route.name == "user"
    [host] = route.virtual_hosts
    assert list(host.domains) == ["user"]
    default = host.routes[-1]
    assert default.match.HasField("prefix") and default.match.prefix == ""
    assert default.route.cluster == "user"

    cluster = cluster_pb2.Cluster()
    assert cds.resources[0].Unpack(cluster) and cluster.name == "user"
    assert cluster.type == cluster_pb2.Cluster.EDS
    assert cluster.eds_cluster_config.eds_config.HasField("ads")
    assert cluster.lb_policy == cluster_pb2.Cluster.ROUND_ROBIN
    assert len({lds.nonce, rds.nonce, cds.nonce}) == 3


async def test_endpoints_follow_registrations_deregistrations_and_expiry(
    xds_registry: XdsRegistry,
) -> None:
    await xds_registry.register("user", "127.0.0.1:7001")
    async with AdsStream(xds_registry.channel) as ads:
        await ads.subscribe(ENDPOINTS, ["user"])
        first = await ads.recv()
        assert _endpoints(first) == {"user": ["127.0.0.1:7001 HEALTHY"]}
        await ads.ack(first, ["user"])

        lease = await xds_registry.register("user", "[::1]:7002")
        second = await ads.recv()
        assert _endpoints(second) == {"user": ["127.0.0.1:7001 HEALTHY", "::1:7002 HEALTHY"]}
        assert int(second.version_info) > int(first.version_info)
        assert second.nonce != first.nonce
        await ads.ack(second, ["user"])

        await xds_registry.store.deregister(lease)
        third = await ads.recv()
        assert _endpoints(third) == {"user": ["127.0.0.1:7001 HEALTHY"]}
        await ads.ack(third, ["user"])

        await xds_registry.register("user", "127.0.0.1:7003", ttl_s=1.0)  # > a loop stall
        assert len(_endpoints(await ads.recv())["user"]) == 2
        expired = await ads.recv()  # the reaper evicts it: pushed like a deregistration
        assert _endpoints(expired) == {"user": ["127.0.0.1:7001 HEALTHY"]}


async def test_an_empty_service_has_an_assignment_without_endpoints(
    xds_registry: XdsRegistry,
) -> None:
    async with AdsStream(xds_registry.channel) as ads:
        await ads.subscribe(ENDPOINTS, ["nobody"])
        empty = await ads.recv()
        assert _endpoints(empty) == {"nobody": []}
        await ads.ack(empty, ["nobody"])
        await xds_registry.register("nobody", "127.0.0.1:7010")
        assert _endpoints(await ads.recv()) == {"nobody": ["127.0.0.1:7010 HEALTHY"]}


async def test_a_nack_is_logged_and_never_stalls_another_stream(
    xds_registry: XdsRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    await xds_registry.register("user", "127.0.0.1:7001")
    async with (
        AdsStream(xds_registry.channel, "nacker") as bad,
        AdsStream(xds_registry.channel, "good") as good,
    ):
        for ads in (bad, good):
            await ads.subscribe(ENDPOINTS, ["user"])
        rejected, accepted = await bad.recv(), await good.recv()
        with caplog.at_level(logging.WARNING, logger="registry.xds"):
            await bad.nack(rejected, ["user"], "weights do not add up")
            await good.ack(accepted, ["user"])
            await _nothing_more(bad)  # a NACK is not answered by resending the same
        assert "NACK" in caplog.text and "node nacker" in caplog.text
        assert "weights do not add up" in caplog.text

        await xds_registry.register("user", "127.0.0.1:7002")
        for ads in (good, bad):  # both move on to the next version
            assert len(_endpoints(await ads.recv())["user"]) == 2


async def test_a_stale_nonce_is_ignored_until_the_latest_is_acked(
    xds_registry: XdsRegistry,
) -> None:
    async with AdsStream(xds_registry.channel) as ads:
        await ads.subscribe(CLUSTER, ["user"])
        first = await ads.recv()
        await ads.subscribe(CLUSTER, ["user", "product"], nonce="not-" + first.nonce)
        await _nothing_more(ads)
        await ads.ack(first, ["user", "product"])
        both = await ads.recv()
        assert sorted(_names(both)) == ["product", "user"]


def _names(response: discovery_pb2.DiscoveryResponse) -> list[str]:
    names = []
    for packed in response.resources:
        cluster = cluster_pb2.Cluster()
        assert packed.Unpack(cluster)
        names.append(cluster.name)
    return names


async def test_a_name_that_is_no_service_name_gets_no_resource(
    xds_registry: XdsRegistry,
) -> None:
    async with AdsStream(xds_registry.channel) as ads:
        await ads.subscribe(CLUSTER, ["Not A Service", "user"])
        assert _names(await ads.recv()) == ["user"]


async def test_a_malformed_request_ends_only_its_own_stream(xds_registry: XdsRegistry) -> None:
    await xds_registry.register("user", "127.0.0.1:7001")
    async with AdsStream(xds_registry.channel) as good:
        await good.subscribe(ENDPOINTS, ["user"])
        await good.ack(await good.recv(), ["user"])

        async with AdsStream(xds_registry.channel) as bad:
            await bad.send(discovery_pb2.DiscoveryRequest(resource_names=["user"]))
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await bad.recv()
        error = from_rpc_error(caught.value)
        assert isinstance(error, InvalidArgument) and error.reason == "XDS_NO_TYPE_URL"

        garbage = xds_registry.channel.stream_stream(
            f"/{ADS_SERVICE_NAME}/StreamAggregatedResources",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        call = garbage(_one(b"\xff\xff\xff"))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(call.read(), 5.0)
        call.cancel()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        await xds_registry.register("user", "127.0.0.1:7002")
        assert len(_endpoints(await good.recv())["user"]) == 2


async def _one(data: bytes):  # type: ignore[no-untyped-def]
    yield data
    await asyncio.Event().wait()  # keep the stream open: the server must be the one to end it


async def test_xds_reads_need_no_token(make_xds_registry: MakeXdsRegistry) -> None:
    registry = await make_xds_registry(RegistrySettings(token="s3cret"))
    await registry.register("user", "127.0.0.1:7001")
    async with AdsStream(registry.channel) as ads:
        await ads.subscribe(ENDPOINTS, ["user"])
        assert _endpoints(await ads.recv()) == {"user": ["127.0.0.1:7001 HEALTHY"]}


async def test_one_feed_serves_every_stream_and_ends_with_the_last(
    xds_registry: XdsRegistry,
) -> None:
    await xds_registry.register("user", "127.0.0.1:7001")
    streams = [AdsStream(xds_registry.channel, f"n{i}") for i in range(5)]
    for ads in streams:
        await ads.subscribe(ENDPOINTS, ["user"])
    for ads in streams:
        await ads.recv()
    assert len(xds_registry.plane.feeds) == 1
    for ads in streams:
        await ads.__aexit__(None, None, None)
    for _ in range(200):  # the server notices each cancellation on its own schedule
        if len(xds_registry.plane.feeds) == 0:
            break
        await asyncio.sleep(0.01)
    assert len(xds_registry.plane.feeds) == 0
