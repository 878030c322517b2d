"""Validation of registry requests: every bound the contract states, checked up front.

Each ``*_violations`` function returns the list of ``(field, description)`` pairs
for everything wrong with its input (empty when valid), so one error can name
EACH bad field; :func:`require` turns a non-empty list into
``errors.InvalidArgument``. Nothing is validated after a change has begun: a
request is either fully valid or changes nothing.

Example::

    require(instance_violations(request.instance, "instance"))
    # raises InvalidArgument(violations=[("instance.address", "...")]) when bad
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from google.protobuf import duration_pb2

from services.runtime import errors
from switchboard.registry.v1 import instance_pb2

__all__ = [
    "MAX_ADDRESS_LENGTH",
    "MAX_INSTANCE_ID_LENGTH",
    "MAX_LEASE_ID_LENGTH",
    "MAX_METADATA_ENTRIES",
    "MAX_METADATA_KEY_LENGTH",
    "MAX_METADATA_VALUE_BYTES",
    "MAX_VERSION_LENGTH",
    "Violation",
    "address_violations",
    "instance_violations",
    "lease_id_violations",
    "require",
    "revision_violations",
    "service_violations",
    "ttl_seconds",
    "ttl_violations",
]

Violation = tuple[str, str]

MAX_INSTANCE_ID_LENGTH = 128
MAX_ADDRESS_LENGTH = 261  # a 253-character DNS name, ':' and a 5-digit port (+ slack)
MAX_METADATA_ENTRIES = 64
MAX_METADATA_KEY_LENGTH = 63
MAX_METADATA_VALUE_BYTES = 1024
MAX_VERSION_LENGTH = 64
MAX_LEASE_ID_LENGTH = 128

_SERVICE_RE = re.compile(r"[a-z][a-z0-9-]{0,62}")
_INSTANCE_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_LEASE_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
_DNS_LABEL_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PORT_RE = re.compile(r"[0-9]{1,5}")
# Keys are labels, not prose: printable ASCII without spaces keeps them safe to
# log, to put in a header and to use as an etcd key segment.
_METADATA_KEY_RE = re.compile(r"[!-~]{1,63}")


def require(violations: Sequence[Violation], message: str = "invalid request") -> None:
    """Raise ``errors.InvalidArgument`` naming every violation, if there are any.

    Example: ``require([("service", "must not be empty")])`` raises.
    """
    if violations:
        raise errors.InvalidArgument(message, violations=violations)


def service_violations(name: str, field: str = "service") -> list[Violation]:
    """Violations of a service name: ``^[a-z][a-z0-9-]{0,62}$``.

    Example: ``service_violations("User")`` → ``[("service", "...")]``.
    """
    if not name:
        return [(field, "must not be empty")]
    if _SERVICE_RE.fullmatch(name) is None:
        return [
            (
                field,
                "must be 1-63 lowercase letters, digits or '-', starting with a letter",
            )
        ]
    return []


def lease_id_violations(lease_id: str, field: str = "lease_id") -> list[Violation]:
    """Violations of a lease id's shape (whether it exists is the store's business).

    Example: ``lease_id_violations("")`` → ``[("lease_id", "must not be empty")]``.
    """
    if not lease_id:
        return [(field, "must not be empty")]
    if _LEASE_ID_RE.fullmatch(lease_id) is None:
        return [(field, f"must be 1-{MAX_LEASE_ID_LENGTH} characters of [A-Za-z0-9_-]")]
    return []


def revision_violations(revision: int, field: str = "start_revision") -> list[Violation]:
    """Violations of a watch start revision (zero or positive).

    Example: ``revision_violations(-1)`` → ``[("start_revision", "must not be negative")]``.
    """
    return [(field, "must not be negative")] if revision < 0 else []


def instance_violations(
    instance: instance_pb2.Instance | None, field: str = "instance"
) -> list[Violation]:
    """Every violation of an instance's writable fields, each named by its path.

    Example: an instance with address "x" yields ``("instance.address", ...)``.
    """
    if instance is None:
        return [(field, "is required")]
    found = service_violations(instance.service, f"{field}.service")
    found += _instance_id_violations(instance.instance_id, f"{field}.instance_id")
    found += address_violations(instance.address, f"{field}.address")
    found += _metadata_violations(instance.metadata, f"{field}.metadata")
    if len(instance.version) > MAX_VERSION_LENGTH:
        found.append((f"{field}.version", f"must be at most {MAX_VERSION_LENGTH} characters"))
    return found


def _instance_id_violations(instance_id: str, field: str) -> list[Violation]:
    """Violations of an instance id: 1-128 of letters, digits, '.', '_', ':', '-'."""
    if not instance_id:
        return [(field, "must not be empty")]
    if _INSTANCE_ID_RE.fullmatch(instance_id) is None:
        return [
            (
                field,
                f"must be 1-{MAX_INSTANCE_ID_LENGTH} letters, digits, '.', '_', ':' or '-'",
            )
        ]
    return []


def address_violations(address: str, field: str = "address") -> list[Violation]:
    """Violations of a dialable ``host:port`` (``[v6]:port`` for IPv6), port 1-65535.

    Example: ``address_violations("::1:80")`` → ``[("address", "...brackets...")]``.
    """
    if not address:
        return [(field, "must not be empty")]
    if len(address) > MAX_ADDRESS_LENGTH:
        return [(field, f"must be at most {MAX_ADDRESS_LENGTH} characters")]
    host, sep, port = address.rpartition(":")
    if not sep or not host:
        return [(field, "must be host:port")]
    problem = _port_problem(port) or _host_problem(host)
    return [(field, problem)] if problem else []


def _port_problem(port: str) -> str | None:
    """Why ``port`` is not a decimal port 1-65535 (None when it is)."""
    if _PORT_RE.fullmatch(port) is None or not 1 <= int(port) <= 65535:
        return "port must be a number from 1 to 65535"
    return None


def _host_problem(host: str) -> str | None:
    """Why ``host`` is not a DNS name, an IPv4 address or a bracketed IPv6 address."""
    if host.startswith("[") and host.endswith("]"):
        return _ipv6_problem(host[1:-1])
    if ":" in host:
        return "an IPv6 host must be in brackets, as [::1]:port"
    if host.replace(".", "").isdigit():
        return _ipv4_problem(host)
    return _dns_problem(host)


def _ipv6_problem(host: str) -> str | None:
    """Why the text inside brackets is not an IPv6 address."""
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return "host in brackets must be an IPv6 address"
    return None


def _ipv4_problem(host: str) -> str | None:
    """Why an all-digits-and-dots host is not an IPv4 address."""
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return "host must be a valid IPv4 address"
    return None


def _dns_problem(host: str) -> str | None:
    """Why ``host`` is not a DNS name (RFC 1123 labels, at most 253 characters)."""
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if len(name) > 253 or not all(_DNS_LABEL_RE.fullmatch(label) for label in labels):
        return "host must be a DNS name, an IPv4 address or a bracketed IPv6 address"
    return None


def _metadata_violations(metadata: object, field: str) -> list[Violation]:
    """Violations of the metadata map: entry count, key shape, value size."""
    items = dict(metadata)  # type: ignore[call-overload]
    found: list[Violation] = []
    if len(items) > MAX_METADATA_ENTRIES:
        found.append((field, f"must have at most {MAX_METADATA_ENTRIES} entries"))
    for key, value in sorted(items.items()):
        found += _metadata_entry_violations(key, value, field)
        if len(found) > MAX_METADATA_ENTRIES:
            break  # a bounded answer, even for a huge bad map
    return found


def _metadata_entry_violations(key: str, value: str, field: str) -> list[Violation]:
    """Violations of one metadata entry; the field names the key (shortened if huge)."""
    path = f"{field}[{_quote(key)}]"
    found: list[Violation] = []
    if _METADATA_KEY_RE.fullmatch(key) is None:
        found.append(
            (
                path,
                f"key must be 1-{MAX_METADATA_KEY_LENGTH} printable ASCII characters "
                "without spaces",
            )
        )
    if len(value.encode()) > MAX_METADATA_VALUE_BYTES:
        found.append((path, f"value must be at most {MAX_METADATA_VALUE_BYTES} bytes"))
    return found


def _quote(key: str) -> str:
    """A short, printable rendering of a (possibly bad) key for a field path."""
    escaped = key[:MAX_METADATA_KEY_LENGTH].encode("unicode_escape").decode("ascii")
    suffix = "..." if len(key) > MAX_METADATA_KEY_LENGTH else ""
    return '"' + escaped.replace('"', '\\"') + suffix + '"'


def ttl_violations(
    ttl: duration_pb2.Duration, *, minimum: float, maximum: float, field: str = "ttl"
) -> list[Violation]:
    """Violations of a requested TTL: zero (the default) or within ``[minimum, maximum]``.

    Example: ``ttl_violations(Duration(seconds=900), minimum=1, maximum=300)`` → ``[("ttl", ...)]``.
    """
    if not -999_999_999 <= ttl.nanos <= 999_999_999 or ttl.seconds * ttl.nanos < 0:
        return [(field, "must be a valid Duration")]
    seconds = ttl.seconds + ttl.nanos / 1e9
    if seconds != 0 and not minimum <= seconds <= maximum:
        return [(field, f"must be 0 (the default) or from {minimum:g}s to {maximum:g}s")]
    return []


def ttl_seconds(ttl: duration_pb2.Duration, default: float) -> float:
    """The TTL to grant for a requested (already validated) Duration: zero → ``default``.

    Example: ``ttl_seconds(Duration(seconds=0), default=10.0)`` → 10.0.
    """
    seconds = ttl.seconds + ttl.nanos / 1e9
    return seconds if seconds else default
