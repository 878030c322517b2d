"""Where the etcd store keeps things: the key layout under the prefix, and its records.

::

    <prefix>instances/<service>/<instance_id>          the Instance (serialized protobuf)
    <prefix>instances/<service>/~removed/<instance_id> marks a deregistration (see below)
    <prefix>holders/<service>/<instance_id>            {"lease_id", "owner"} of the entry
    <prefix>leases/<lease_id>                          {"etcd", "ttl", "service", "instance_id",
                                                        "owner"}: our lease id -> etcd's lease

Every key of a registration is attached to its one etcd lease, so etcd deletes
them together when the lease expires or is revoked. Our lease ids are random
(``new_lease_id``) and mapped to etcd's lease id in etcd itself: every replica
resolves them alike, and nobody can renew a lease by counting etcd's ids.

A deregistration deletes the instance and puts a ``~removed`` marker in the same
transaction (one revision), then revokes the lease (which deletes the marker):
a watcher sees the marker beside the delete and reports REMOVED; a delete with
no marker is an expiry (EXPIRED). ``~`` sorts after every instance id character,
so ``[instances/<service>/, instances/<service>/~)`` holds just the instances.

Example::

    keys = Keys("/switchboard/registry/v1/")
    keys.instance("user", "u1")    # b"/switchboard/registry/v1/instances/user/u1"
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

__all__ = ["Holder", "Keys", "LeaseRecord", "prefix_end"]

_MARKER = "~removed/"


def prefix_end(prefix: bytes) -> bytes:
    """The range end that covers every key starting with ``prefix`` (etcd's convention).

    Example: ``prefix_end(b"/a/") == b"/a0"``.
    """
    end = bytearray(prefix)
    for index in range(len(end) - 1, -1, -1):
        if end[index] < 0xFF:
            end[index] += 1
            return bytes(end[: index + 1])
    return b"\0"


class Keys:
    """The store's keys under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._instances = prefix + "instances/"
        self._holders = prefix + "holders/"
        self._leases = prefix + "leases/"

    def instance(self, service: str, instance_id: str) -> bytes:
        return f"{self._instances}{service}/{instance_id}".encode()

    def marker(self, service: str, instance_id: str) -> bytes:
        return f"{self._instances}{service}/{_MARKER}{instance_id}".encode()

    def holder(self, service: str, instance_id: str) -> bytes:
        return f"{self._holders}{service}/{instance_id}".encode()

    def lease(self, lease_id: str) -> bytes:
        return f"{self._leases}{lease_id}".encode()

    def instances_of(self, service: str) -> tuple[bytes, bytes]:
        """The range of the service's instances (no markers)."""
        start = f"{self._instances}{service}/".encode()
        return start, start[:-1] + b"/~"

    def watched(self, service: str) -> tuple[bytes, bytes]:
        """The range a watch covers: the service's instances and markers."""
        start = f"{self._instances}{service}/".encode()
        return start, prefix_end(start)

    def holders(self) -> tuple[bytes, bytes]:
        """Every holder key: one per live instance."""
        start = self._holders.encode()
        return start, prefix_end(start)

    def leases(self) -> tuple[bytes, bytes]:
        """Every lease record."""
        start = self._leases.encode()
        return start, prefix_end(start)

    def service_of_holder(self, key: bytes) -> str:
        """``holders/<service>/<id>`` -> service."""
        return key.decode()[len(self._holders) :].split("/", 1)[0]

    def parse_watched(self, service: str, key: bytes) -> tuple[str, bool]:
        """A watched key -> ``(instance_id, is_marker)``."""
        rest = key.decode()[len(self._instances) + len(service) + 1 :]
        if rest.startswith(_MARKER):
            return rest[len(_MARKER) :], True
        return rest, False


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """What our lease id stands for: etcd's lease, the granted TTL, the entry, its owner."""

    etcd: int
    ttl: float
    service: str
    instance_id: str
    owner: str | None

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> LeaseRecord:
        return cls(**json.loads(data))


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds an entry: our lease id and the owning identity (None: anyone)."""

    lease_id: str
    owner: str | None

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Holder:
        return cls(**json.loads(data))
