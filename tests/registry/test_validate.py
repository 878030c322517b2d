"""Unit tests for registry._validate: every bound the contract states."""

from __future__ import annotations

import pytest
from google.protobuf import duration_pb2

from registry import _validate as v
from services.runtime import errors
from switchboard.registry.v1 import instance_pb2


def _instance(**fields: object) -> instance_pb2.Instance:
    base: dict[str, object] = {
        "service": "user",
        "instance_id": "user-1",
        "address": "127.0.0.1:5000",
        "version": "1.0.0",
    }
    base.update(fields)
    return instance_pb2.Instance(**base)  # type: ignore[arg-type]


def _fields(violations: list[v.Violation]) -> list[str]:
    return [field for field, _ in violations]


@pytest.mark.parametrize("name", ["a", "user", "user-v2", "a" * 63, "x1-2"])
def test_good_service_names(name: str) -> None:
    assert v.service_violations(name) == []


@pytest.mark.parametrize("name", ["", "User", "1user", "-user", "a" * 64, "us_er", "user.v1"])
def test_bad_service_names(name: str) -> None:
    assert _fields(v.service_violations(name)) == ["service"]


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1:1",
        "localhost:65535",
        "[::1]:50051",
        "[2001:db8::1]:443",
        "user-1.svc.cluster.local:8080",
        "host.:80",
    ],
)
def test_good_addresses(address: str) -> None:
    assert v.address_violations(address) == []


@pytest.mark.parametrize(
    "address",
    [
        "",
        "localhost",
        ":80",
        "localhost:0",
        "localhost:65536",
        "localhost:http",
        "::1:80",
        "[::1]",
        "[not-v6]:80",
        "256.1.1.1:80",
        "-bad-.com:80",
        "http://x:80",
        "a b:80",
        "x" * 300 + ":80",
        "host:+80",
    ],
)
def test_bad_addresses(address: str) -> None:
    assert _fields(v.address_violations(address)) == ["address"]


def test_a_good_instance_has_no_violations() -> None:
    metadata = {"zone": "eu-1", "weight": "10", "k" * 63: "x" * 1024}
    assert v.instance_violations(_instance(metadata=metadata)) == []


def test_missing_instance_is_a_violation() -> None:
    assert _fields(v.instance_violations(None)) == ["instance"]


def test_each_bad_field_is_named() -> None:
    bad = _instance(service="Bad", instance_id="", address="nope", version="v" * 65)
    assert _fields(v.instance_violations(bad)) == [
        "instance.service",
        "instance.instance_id",
        "instance.address",
        "instance.version",
    ]


@pytest.mark.parametrize("instance_id", ["a/b", "a b", "x" * 129, "é"])
def test_bad_instance_ids(instance_id: str) -> None:
    fields = _fields(v.instance_violations(_instance(instance_id=instance_id)))
    assert fields == ["instance.instance_id"]


def test_metadata_bounds() -> None:
    too_many = {f"k{i}": "v" for i in range(65)}
    assert _fields(v.instance_violations(_instance(metadata=too_many))) == ["instance.metadata"]
    long_key = {"k" * 64: "v"}
    assert _fields(v.instance_violations(_instance(metadata=long_key))) == [
        f'instance.metadata["{"k" * 63}..."]'
    ]
    big_value = {"zone": "x" * 1025}
    assert _fields(v.instance_violations(_instance(metadata=big_value))) == [
        'instance.metadata["zone"]'
    ]
    multibyte = {"zone": "é" * 513}  # 1026 bytes in UTF-8
    assert len(v.instance_violations(_instance(metadata=multibyte))) == 1
    for key in ("", "a b", "tab\t"):
        assert len(v.instance_violations(_instance(metadata={key: "v"}))) == 1


def test_huge_bad_metadata_gives_a_bounded_answer() -> None:
    bad = {f"bad key {i}": "v" for i in range(500)}
    assert len(v.instance_violations(_instance(metadata=bad))) <= v.MAX_METADATA_ENTRIES + 2


@pytest.mark.parametrize("lease_id", ["", "a" * 129, "has space", "slash/"])
def test_bad_lease_ids(lease_id: str) -> None:
    assert _fields(v.lease_id_violations(lease_id)) == ["lease_id"]


def test_good_lease_id() -> None:
    assert v.lease_id_violations("AbC_-09" * 4) == []


def test_revision() -> None:
    assert v.revision_violations(0) == []
    assert _fields(v.revision_violations(-1)) == ["start_revision"]


@pytest.mark.parametrize(
    ("seconds", "nanos", "ok"),
    [
        (0, 0, True),
        (1, 0, True),
        (300, 0, True),
        (0, 999_999_999, False),
        (300, 1, False),
        (-1, 0, False),
        (1, -5, False),
        (1, 2_000_000_000, False),
    ],
)
def test_ttl_bounds(seconds: int, nanos: int, ok: bool) -> None:
    ttl = duration_pb2.Duration(seconds=seconds, nanos=nanos)
    found = v.ttl_violations(ttl, minimum=1.0, maximum=300.0)
    assert (found == []) is ok
    assert all(field == "ttl" for field, _ in found)


def test_zero_ttl_means_default() -> None:
    assert v.ttl_seconds(duration_pb2.Duration(), default=10.0) == 10.0
    assert v.ttl_seconds(duration_pb2.Duration(seconds=2, nanos=500_000_000), 10.0) == 2.5


def test_require_raises_with_every_violation() -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        v.require([("a", "x"), ("b", "y")])
    assert [f.field for f in caught.value.violations] == ["a", "b"]
    v.require([])
