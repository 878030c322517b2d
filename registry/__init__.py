"""The Switchboard registry: where service instances register, renew leases and are found.

Public surface: the storage interface and its in-memory implementation, the
servicer and its runtime binding, the settings, and the process entry point.

Example::

    from registry import MemoryStore, RegistryServicer, RegistrySettings, registry_service
    from services.runtime import ServerConfig, create_server

    store = MemoryStore()
    await store.start()
    servicer = RegistryServicer(store, RegistrySettings(token="s3cret"))
    server, port = create_server([registry_service(servicer)], ServerConfig())
"""

from __future__ import annotations

from registry._app import build_parser, main, parse_args, run
from registry._servicer import SERVICE_NAME, RegistryServicer, registry_service
from registry._settings import RegistrySettings, add_registry_arguments
from registry.store import (
    MemoryStore,
    Registration,
    RegistryStore,
    Resolution,
    ServiceCount,
    StoreLimits,
    WatchItem,
    WatchStream,
)

__all__ = [
    "SERVICE_NAME",
    "MemoryStore",
    "Registration",
    "RegistryServicer",
    "RegistrySettings",
    "RegistryStore",
    "Resolution",
    "ServiceCount",
    "StoreLimits",
    "WatchItem",
    "WatchStream",
    "add_registry_arguments",
    "registry_service",
    "build_parser",
    "main",
    "parse_args",
    "run",
]
