"""The registry as an xDS control plane: gRPC clients in any language dial ``xds:///<service>``.

The registry serves the Aggregated Discovery Service (state of the world) on its
gRPC port with the four resources gRFC A27 clients ask for, all named after the
service: Listener, RouteConfiguration, Cluster (EDS, round robin) and
ClusterLoadAssignment (the live instances), the last pushed on every
registration, eviction and deregistration. xDS is read-only: no token needed.

Example::

    plane = ControlPlane(store)
    await serve([registry_service(servicer), plane.service()], config, hooks=[plane])
    print(bootstrap_json("127.0.0.1:50051"))   # for GRPC_XDS_BOOTSTRAP
"""

from __future__ import annotations

from registry.xds._ads import ADS_SERVICE_NAME, MAX_NAMES, AdsServicer, ControlPlane
from registry.xds._feeds import EndpointFeeds, WatchableStore
from registry.xds._resources import CLUSTER, ENDPOINTS, LISTENER, ROUTE, TYPE_URLS
from services.runtime.client.xds_bootstrap import DEFAULT_NODE_ID, bootstrap, bootstrap_json

__all__ = [
    "ADS_SERVICE_NAME",
    "CLUSTER",
    "DEFAULT_NODE_ID",
    "ENDPOINTS",
    "LISTENER",
    "MAX_NAMES",
    "ROUTE",
    "TYPE_URLS",
    "AdsServicer",
    "ControlPlane",
    "EndpointFeeds",
    "WatchableStore",
    "bootstrap",
    "bootstrap_json",
]
