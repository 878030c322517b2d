"""Where the registry keeps its state: the ``RegistryStore`` interface and its stores.

``MemoryStore`` (the default) keeps everything in the process; ``EtcdStore`` keeps
it in an etcd cluster so that several registry replicas serve the same state.

Example::

    from registry.store import MemoryStore, StoreLimits

    store = MemoryStore(StoreLimits(max_instances=1_000))
    await store.start()
"""

from __future__ import annotations

from registry.store._interface import (
    Registration,
    RegistryStore,
    Resolution,
    ServiceCount,
    StoreLimits,
    WatchItem,
    WatchStream,
    new_lease_id,
)
from registry.store._memory import MemoryStore

__all__ = [
    "MemoryStore",
    "Registration",
    "RegistryStore",
    "Resolution",
    "ServiceCount",
    "StoreLimits",
    "WatchItem",
    "WatchStream",
    "new_lease_id",
]
