"""mTLS on the registry: a certificate decides which service, and which leases, a client may touch.

A real registry process with ``--tls-cert/--tls-key/--tls-client-ca``:

* An instance may register only under a service its certificate names (CN
  or a DNS SAN): PERMISSION_DENIED otherwise.
* A lease belongs to the certificate identity that registered it: another
  instance - of another service, or of the same service with a different
  certificate - can neither renew it (Heartbeat, KeepAlive), nor deregister
  it, nor take over its instance id by registering it again: PERMISSION_DENIED,
  and the owner's lease is untouched.
* The user service's own registration agent registers over mTLS with the
  ``--registry-tls/-ca/-cert/-key`` flags.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio
import pytest
from google.protobuf import duration_pb2

from harness import Launcher, Process
from switchboard.registry.v1 import instance_pb2
from switchboard.registry.v1 import registry_service_pb2 as rs
from switchboard.registry.v1 import registry_service_pb2_grpc as rs_grpc
from tests.reliability._support.waits import eventually
from tests.security._pki import Pki

pytestmark = pytest.mark.e2e


def register_request(service: str, instance_id: str) -> rs.RegisterRequest:
    instance = instance_pb2.Instance(
        service=service, instance_id=instance_id, address="127.0.0.1:5001"
    )
    return rs.RegisterRequest(instance=instance, ttl=duration_pb2.Duration(seconds=30))


@dataclass
class Secured:
    registry: Process
    pki: Pki
    channels: list[grpc.aio.Channel]

    def stub(self, common_name: str, dns: tuple[str, ...] = ()) -> rs_grpc.RegistryServiceAsyncStub:
        """A registry client presenting a certificate for ``common_name`` (and ``dns``)."""
        credentials = self.pki.credentials(self.pki.client(common_name, dns))
        channel = grpc.aio.secure_channel(self.registry.address, credentials)
        self.channels.append(channel)
        return rs_grpc.RegistryServiceStub(channel)


@pytest.fixture
async def secured(launcher: Launcher, tmp_path: Path) -> AsyncIterator[Secured]:
    pki = Pki.create(tmp_path / "pki")
    registry = await launcher.start("registry", *pki.server_flags())
    secured = Secured(registry, pki, [])
    yield secured
    for channel in secured.channels:
        await channel.close()


async def code_of(call: Awaitable[object]) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def test_an_instance_registers_only_under_its_certificates_service(
    secured: Secured,
) -> None:
    user = secured.stub("user")
    by_san = secured.stub("host-a", ("product",))
    assert await code_of(user.Register(register_request("user", "u-1"), timeout=5)) == (
        grpc.StatusCode.OK
    )
    assert await code_of(by_san.Register(register_request("product", "p-1"), timeout=5)) == (
        grpc.StatusCode.OK
    )
    for stub, service in ((user, "product"), (by_san, "user"), (user, "registry")):
        code = await code_of(stub.Register(register_request(service, "x-1"), timeout=5))
        assert code == grpc.StatusCode.PERMISSION_DENIED, service
    listed = await user.ListServices(rs.ListServicesRequest(), timeout=5)
    assert [(s.name, s.instance_count) for s in listed.services] == [("product", 1), ("user", 1)]


async def test_one_instance_cannot_touch_anothers_lease(secured: Secured) -> None:
    owner = secured.stub("user", ("user", "host-a"))
    lease = (await owner.Register(register_request("user", "u-1"), timeout=5)).lease_id
    strangers = {
        "another service": secured.stub("product"),
        "same service, other instance": secured.stub("user", ("user", "host-b")),
    }
    for name, stub in strangers.items():
        # One call at a time: a grpc.aio call starts as soon as it is made.
        heartbeat = await code_of(stub.Heartbeat(rs.HeartbeatRequest(lease_id=lease), timeout=5))
        assert heartbeat == grpc.StatusCode.PERMISSION_DENIED, f"Heartbeat: {name}"
        drop = await code_of(stub.Deregister(rs.DeregisterRequest(lease_id=lease), timeout=5))
        assert drop == grpc.StatusCode.PERMISSION_DENIED, f"Deregister: {name}"
        stream = stub.KeepAlive(timeout=5)
        await stream.write(rs.KeepAliveRequest(lease_id=lease))
        assert await stream.code() == grpc.StatusCode.PERMISSION_DENIED, f"KeepAlive: {name}"
    hijack = strangers["same service, other instance"].Register(
        register_request("user", "u-1"), timeout=5
    )
    assert await code_of(hijack) == grpc.StatusCode.PERMISSION_DENIED
    # The owner's lease is untouched, and the owner may renew and replace its own entry.
    await owner.Heartbeat(rs.HeartbeatRequest(lease_id=lease), timeout=5)
    resolved = await owner.Resolve(rs.ResolveRequest(service="user"), timeout=5)
    assert [i.instance_id for i in resolved.instances] == ["u-1"]
    again = await owner.Register(register_request("user", "u-1"), timeout=5)
    await owner.Deregister(rs.DeregisterRequest(lease_id=again.lease_id), timeout=5)


async def test_a_service_registers_itself_over_mtls(
    secured: Secured, launcher: Launcher, tmp_path: Path
) -> None:
    client = secured.pki.client("user")
    user = await launcher.start(
        "services.user",
        *("--data-dir", str(tmp_path / "user")),
        *("--registry", secured.registry.address, "--registry-tls", "1"),
        *("--registry-ca", str(secured.pki.ca.cert)),
        *("--registry-cert", str(client.cert), "--registry-key", str(client.key)),
    )
    reader = secured.stub("reader")

    async def listed() -> bool:
        answer = await reader.Resolve(rs.ResolveRequest(service="user"), timeout=5)
        return [i.address for i in answer.instances] == [user.address]

    await eventually(listed, 10.0, "the user service registered over mTLS")
