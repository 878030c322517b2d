"""The four xDS resources a proxyless gRPC client needs for one service (gRFC A27).

For service ``user`` (target ``xds:///user``) every resource is named ``user``:

* Listener ``user``: an API listener whose HTTP connection manager fetches
  RouteConfiguration ``user`` over ADS and ends with the router filter;
* RouteConfiguration ``user``: one virtual host for domain ``user`` whose default
  route (empty prefix) sends every call to cluster ``user``;
* Cluster ``user``: type EDS over ADS, ROUND_ROBIN;
* ClusterLoadAssignment ``user``: the live instances as HEALTHY endpoints in one
  locality with weight 1 at priority 0 (gRPC skips a locality without a weight).

Example::

    any_listener = pack(listener("user"))
    assignment = load_assignment("user", [Endpoint("127.0.0.1", 50052)])
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from google.protobuf import any_pb2, duration_pb2, message, wrappers_pb2

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import api_listener_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

__all__ = [
    "CLUSTER",
    "ENDPOINTS",
    "LISTENER",
    "ROUTE",
    "TYPE_URLS",
    "Endpoint",
    "cluster",
    "listener",
    "load_assignment",
    "pack",
    "parse_address",
    "route_configuration",
]

_PREFIX = "type.googleapis.com/"
LISTENER = _PREFIX + listener_pb2.Listener.DESCRIPTOR.full_name
ROUTE = _PREFIX + route_pb2.RouteConfiguration.DESCRIPTOR.full_name
CLUSTER = _PREFIX + cluster_pb2.Cluster.DESCRIPTOR.full_name
ENDPOINTS = _PREFIX + endpoint_pb2.ClusterLoadAssignment.DESCRIPTOR.full_name
TYPE_URLS: tuple[str, ...] = (LISTENER, ROUTE, CLUSTER, ENDPOINTS)
"""The resource types served, in the order a client asks for them."""

_ROUTER_FILTER = "envoy.filters.http.router"
_CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One instance as gRPC dials it: an IP literal and a port."""

    ip: str
    port: int


def pack(resource: message.Message) -> any_pb2.Any:
    """``resource`` in an Any with the ``type.googleapis.com/`` type URL xDS expects."""
    packed = any_pb2.Any()
    packed.Pack(resource)
    return packed


def _ads() -> config_source_pb2.ConfigSource:
    """A config source saying: over the same ADS stream, v3 resources."""
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.V3,
    )


def listener(name: str) -> listener_pb2.Listener:
    """The API listener for ``xds:///name``: RDS over ADS, router filter last."""
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix=name,
        rds=hcm_pb2.Rds(config_source=_ads(), route_config_name=name),
        http_filters=[
            hcm_pb2.HttpFilter(name=_ROUTER_FILTER, typed_config=pack(router_pb2.Router()))
        ],
    )
    return listener_pb2.Listener(
        name=name, api_listener=api_listener_pb2.ApiListener(api_listener=pack(manager))
    )


def route_configuration(name: str) -> route_pb2.RouteConfiguration:
    """One virtual host for domain ``name``: every call goes to cluster ``name``."""
    default = route_components_pb2.Route(
        match=route_components_pb2.RouteMatch(prefix=""),
        route=route_components_pb2.RouteAction(cluster=name),
    )
    host = route_components_pb2.VirtualHost(name=name, domains=[name], routes=[default])
    return route_pb2.RouteConfiguration(name=name, virtual_hosts=[host])


def cluster(name: str) -> cluster_pb2.Cluster:
    """An EDS cluster (endpoints over ADS, same name), balanced round robin."""
    return cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.EDS,
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(eds_config=_ads()),
        connect_timeout=duration_pb2.Duration(seconds=_CONNECT_TIMEOUT_S),
        lb_policy=cluster_pb2.Cluster.ROUND_ROBIN,
    )


def load_assignment(name: str, endpoints: list[Endpoint]) -> endpoint_pb2.ClusterLoadAssignment:
    """The live endpoints of ``name``; no locality at all when there are none."""
    if not endpoints:
        return endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
    one = wrappers_pb2.UInt32Value(value=1)
    locality = endpoint_components_pb2.LocalityLbEndpoints(
        locality=base_pb2.Locality(),
        lb_endpoints=[_lb_endpoint(e) for e in endpoints],
        load_balancing_weight=one,
        priority=0,
    )
    return endpoint_pb2.ClusterLoadAssignment(cluster_name=name, endpoints=[locality])


def _lb_endpoint(endpoint: Endpoint) -> endpoint_components_pb2.LbEndpoint:
    socket = address_pb2.SocketAddress(address=endpoint.ip, port_value=endpoint.port)
    return endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(
            address=address_pb2.Address(socket_address=socket)
        ),
        # A registered instance holds a live lease: the registry's notion of healthy.
        health_status=health_check_pb2.HEALTHY,
    )


def parse_address(address: str) -> tuple[str, int, bool]:
    """``host:port`` or ``[v6]:port`` -> (host, port, host is an IP literal).

    Example: ``parse_address("[::1]:50052") == ("::1", 50052, True)``.
    """
    host, _, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host, int(port), False
    return host, int(port), True
