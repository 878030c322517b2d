"""The registry's HTTP routes: Prometheus HTTP service discovery at ``/sd/prometheus``.

Prometheus's ``http_sd_configs`` fetch a JSON list of target groups; the
registry answers with one group per live instance that announced an HTTP side
port (instance metadata ``metrics_address``, set by the registration agent)::

    [{"targets": ["127.0.0.1:51052"],
      "labels": {"service": "user", "instance_id": "host-4242-9f3a1c",
                 "version": "0.1.0", "metadata_zone": "a"}}]

One scrape config therefore finds every instance the registry knows, including
ones that start later, and drops one as soon as its lease is gone::

    scrape_configs:
      - job_name: switchboard
        http_sd_configs:
          - url: http://127.0.0.1:51051/sd/prometheus
            refresh_interval: 5s

Example: ``await serve(..., http_routes=registry_http_routes(store))``.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from registry.store import RegistryStore
from services.runtime import HttpRoute
from services.runtime.agent import METRICS_ADDRESS_KEY
from switchboard.registry.v1 import instance_pb2

__all__ = ["prometheus_targets", "registry_http_routes"]

_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def registry_http_routes(store: RegistryStore) -> list[HttpRoute]:
    """The registry's routes on its HTTP side port (``/metrics`` comes with every process)."""

    async def sd_prometheus(request: web.Request) -> web.Response:
        return web.json_response(await prometheus_targets(store))

    return [HttpRoute("GET", "/sd/prometheus", sd_prometheus)]


async def prometheus_targets(store: RegistryStore) -> list[dict[str, Any]]:
    """Every live instance with a ``metrics_address``, as http_sd_configs target groups."""
    counts, _revision = await store.list_services()
    groups: list[dict[str, Any]] = []
    for count in counts:
        resolution = await store.resolve(count.name)
        groups.extend(_group(i) for i in resolution.instances if _target(i))
    return groups


def _target(instance: instance_pb2.Instance) -> str:
    return instance.metadata.get(METRICS_ADDRESS_KEY, "")


def _group(instance: instance_pb2.Instance) -> dict[str, Any]:
    labels = {
        f"metadata_{_LABEL_UNSAFE.sub('_', key)}": value
        for key, value in instance.metadata.items()
        if key != METRICS_ADDRESS_KEY
    }
    labels.update(
        service=instance.service, instance_id=instance.instance_id, version=instance.version
    )
    return {"targets": [_target(instance)], "labels": labels}
