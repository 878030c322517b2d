"""The etcd store over TLS with a client certificate, and with etcd authentication.

Each test starts its own single-member etcd (TLS and auth change how every client
must talk to it, so the session's shared cluster cannot have them).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import EtcdCluster, Tls, etcd_binary
from registry.store import StoreLimits
from registry.store.etcd import EtcdConfig, EtcdStore
from services.runtime import errors
from switchboard.registry.v1 import instance_pb2 as pb
from tests._support import ci
from tests.runtime._certs import make_pki

pytestmark = pytest.mark.e2e


def _instance(instance_id: str = "u1") -> pb.Instance:
    return pb.Instance(service="user", instance_id=instance_id, address="127.0.0.1:5000")


@pytest.fixture
def need_etcd() -> None:
    if etcd_binary() is None and not ci():
        pytest.skip("etcd is not installed: run `make tools-etcd` (CI never skips)")


@pytest.fixture
def tls_cluster(need_etcd: None, tmp_path: Path) -> Iterator[tuple[EtcdCluster, Tls]]:
    ca, server, client = make_pki(tmp_path)
    tls = Tls(ca.cert, server.cert, server.key, client.cert, client.key)
    with EtcdCluster.start(size=1, tls=tls) as cluster:
        yield cluster, tls


async def _round_trip(store: EtcdStore) -> None:
    await store.start()
    try:
        lease = await store.register(_instance(), 5.0)
        assert await store.renew(lease.lease_id) == 5.0
        assert [i.instance_id for i in (await store.resolve("user")).instances] == ["u1"]
        await store.deregister(lease.lease_id)
    finally:
        await store.close()


async def test_tls_with_a_client_certificate(tls_cluster: tuple[EtcdCluster, Tls]) -> None:
    cluster, tls = tls_cluster
    config = EtcdConfig(
        tuple(cluster.endpoints.split(",")),
        prefix=f"/t/{secrets.token_hex(4)}/",
        ca=tls.ca,
        cert=tls.client_cert,
        key=tls.client_key,
    )
    await _round_trip(EtcdStore(config, StoreLimits()))
    plaintext = EtcdStore(EtcdConfig(config.endpoints, timeout=1.0))
    await plaintext.start()
    try:
        with pytest.raises(errors.Unavailable) as caught:
            await plaintext.resolve("user")
        assert caught.value.reason == "STORE_UNAVAILABLE"
    finally:
        await plaintext.close()


def _etcdctl(cluster: EtcdCluster, *args: str) -> None:
    binary = shutil.which("etcdctl")
    assert binary is not None, "etcdctl comes with etcd (make tools-etcd)"
    argv = [binary, f"--endpoints={cluster.endpoints}", *args]
    done = subprocess.run(
        argv, env={"ETCDCTL_API": "3"}, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def auth_cluster(need_etcd: None) -> Iterator[EtcdCluster]:
    with EtcdCluster.start(size=1) as cluster:
        _etcdctl(cluster, "user", "add", "root:s3cret", "--interactive=false")
        _etcdctl(cluster, "user", "grant-role", "root", "root")
        _etcdctl(cluster, "auth", "enable")
        yield cluster


async def test_etcd_authentication(auth_cluster: EtcdCluster) -> None:
    endpoints = tuple(auth_cluster.endpoints.split(","))
    good = EtcdConfig(endpoints, prefix="/t/auth/", user="root", password="s3cret")
    await _round_trip(EtcdStore(good))
    for config in (
        EtcdConfig(endpoints, user="root", password="wrong", timeout=1.0),
        EtcdConfig(endpoints, timeout=1.0),  # no credentials at all
    ):
        store = EtcdStore(config)
        await store.start()
        try:
            with pytest.raises(errors.Unavailable):
                await store.register(_instance(), 5.0)
        finally:
            await store.close()
