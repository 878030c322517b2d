"""The etcd-backed registry store: several stateless registry replicas, one etcd cluster.

Example::

    from registry.store.etcd import EtcdConfig, EtcdStore

    store = EtcdStore(EtcdConfig.parse_endpoints("127.0.0.1:2379,127.0.0.1:22379"))
    await store.start()
"""

from __future__ import annotations

from registry.store.etcd._client import EtcdClient, channel_target
from registry.store.etcd._config import DEFAULT_PREFIX, EtcdConfig, add_etcd_arguments
from registry.store.etcd._keys import prefix_end
from registry.store.etcd._store import EtcdStore

__all__ = [
    "DEFAULT_PREFIX",
    "EtcdClient",
    "EtcdConfig",
    "EtcdStore",
    "add_etcd_arguments",
    "channel_target",
    "prefix_end",
]
