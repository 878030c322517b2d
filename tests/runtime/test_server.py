"""create_server: health, reflection, limits, keepalive enforcement, TLS and binding."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped, unused-ignore]
from grpc_reflection.v1alpha import (  # type: ignore[import-untyped, unused-ignore]
    reflection_pb2,
    reflection_pb2_grpc,
)

from services.runtime import BindError, ListeningHook, ServerConfig, Service, create_server
from services.runtime.server._build import server_options
from tests.runtime._certs import make_pki
from tests.runtime._support import SERVICE_NAME, build_service, unary

SERVING = health_pb2.HealthCheckResponse.SERVING


async def test_health_answers_serving(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for name in ("", SERVICE_NAME):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=name))
        assert reply.status == SERVING
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def _reflect(channel: grpc.aio.Channel, **request: Any) -> Any:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def requests() -> AsyncIterator[Any]:
        yield reflection_pb2.ServerReflectionRequest(**request)

    async for reply in stub.ServerReflectionInfo(requests()):
        return reply
    raise AssertionError("no reflection reply")


async def test_reflection_lists_every_service(channel: grpc.aio.Channel) -> None:
    reply = await _reflect(channel, list_services="")
    names = {service.name for service in reply.list_services_response.service}
    assert names == {
        SERVICE_NAME,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }


async def test_reflection_describes_proto_services(channel: grpc.aio.Channel) -> None:
    reply = await _reflect(channel, file_containing_symbol="grpc.health.v1.Health")
    assert reply.file_descriptor_response.file_descriptor_proto


def test_options_carry_the_limits() -> None:
    options = dict(server_options(ServerConfig(max_concurrent_streams=7, min_ping_interval_s=2)))
    assert options["grpc.max_concurrent_streams"] == 7
    assert options["grpc.http2.min_ping_interval_without_data_ms"] == 2000
    assert options["grpc.max_receive_message_length"] == 4 * 1024 * 1024
    assert options["grpc.max_metadata_size"] == 16 * 1024
    assert options["grpc.so_reuseport"] == 0


async def _started(config: ServerConfig, *services: Service) -> tuple[grpc.aio.Server, int]:
    server, port = create_server(list(services) or [build_service()], config)
    await server.start()
    return server, port


async def test_oversized_metadata_is_refused() -> None:
    server, port = await _started(ServerConfig(max_metadata_bytes=1024))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert await unary(channel, "Echo")(b"x", metadata=(("x-small", "y"),)) == b"x"
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await unary(channel, "Echo")(b"x", metadata=(("x-big", "y" * 4000),))
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        await server.stop(None)


async def test_oversized_response_is_refused() -> None:
    server, port = await _started(ServerConfig(max_send_message_bytes=1024))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await unary(channel, "Echo")(b"x" * 2000)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        await server.stop(None)


async def test_client_pinging_too_often_gets_goaway() -> None:
    server, port = await _started(ServerConfig(min_ping_interval_s=30))
    # gRPC clients ping at most once a second whatever they ask for; three
    # early pings (more than max_ping_strikes=2) earn a GOAWAY after ~3 s.
    options = [
        ("grpc.keepalive_time_ms", 100),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
            await unary(channel, "Echo")(b"x")
            ready = grpc.ChannelConnectivity.READY
            async with asyncio.timeout(15):
                while channel.get_state() == ready:
                    await channel.wait_for_state_change(ready)
    finally:
        await server.stop(None)


def test_duplicate_services_are_refused() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        create_server([build_service(), build_service()], ServerConfig())


async def test_busy_port_is_a_clear_bind_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(BindError, match=f"port {port} is busy: is another instance running"):
            create_server([build_service()], ServerConfig(listen=f"127.0.0.1:{port}"))


async def test_second_server_on_a_taken_port_fails() -> None:
    server, port = await _started(ServerConfig())
    try:
        with pytest.raises(BindError, match="is busy"):
            create_server([build_service()], ServerConfig(listen=f"127.0.0.1:{port}"))
    finally:
        await server.stop(None)


# --- TLS ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    ca, server, client = make_pki(tmp_path_factory.mktemp("pki"))
    return {
        "ca": ca.cert,
        "server_cert": server.cert,
        "server_key": server.key,
        "client_cert": client.cert,
        "client_key": client.key,
    }


def _client_credentials(pki: dict[str, Path], with_cert: bool) -> grpc.ChannelCredentials:
    if not with_cert:
        return grpc.ssl_channel_credentials(root_certificates=pki["ca"].read_bytes())
    return grpc.ssl_channel_credentials(
        root_certificates=pki["ca"].read_bytes(),
        private_key=pki["client_key"].read_bytes(),
        certificate_chain=pki["client_cert"].read_bytes(),
    )


async def _echo_over_tls(port: int, credentials: grpc.ChannelCredentials) -> bytes:
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        reply: bytes = await unary(channel, "Echo")(b"tls", timeout=5)
        return reply


async def test_tls(pki: dict[str, Path]) -> None:
    config = ServerConfig(tls_cert=pki["server_cert"], tls_key=pki["server_key"])
    server, port = await _started(config)
    try:
        assert await _echo_over_tls(port, _client_credentials(pki, with_cert=False)) == b"tls"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as plain:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await unary(plain, "Echo")(b"x", timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(None)


async def test_mtls_requires_a_client_certificate(pki: dict[str, Path]) -> None:
    config = ServerConfig(
        tls_cert=pki["server_cert"], tls_key=pki["server_key"], tls_client_ca=pki["ca"]
    )
    server, port = await _started(config)
    try:
        assert await _echo_over_tls(port, _client_credentials(pki, with_cert=True)) == b"tls"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _echo_over_tls(port, _client_credentials(pki, with_cert=False))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(None)


@pytest.mark.parametrize(
    ("tls", "suffix"),
    [("off", ""), ("tls", " with TLS"), ("mtls", " with mutual TLS (clients need a certificate")],
)
async def test_the_listening_line_says_whether_tls_is_on(
    pki: dict[str, Path], caplog: pytest.LogCaptureFixture, tls: str, suffix: str
) -> None:
    files: dict[str, Any] = {}
    if tls != "off":
        files = {"tls_cert": pki["server_cert"], "tls_key": pki["server_key"]}
    if tls == "mtls":
        files["tls_client_ca"] = pki["ca"]
    hook = ListeningHook("greeter", ServerConfig(listen="127.0.0.1:0", **files), lambda: None)
    with caplog.at_level(logging.INFO, logger="switchboard.greeter"):
        await hook.started(41234)
    assert (
        caplog.records[0].getMessage().startswith(f"greeter listening on 127.0.0.1:41234{suffix}")
    )
