"""Server reflection v1 and v1alpha: the services, and the contracts WITH their comments."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2  # type: ignore[import-untyped, unused-ignore]

from harness import serving
from services.runtime import Service
from services.runtime.server._reflection import (
    REFLECTION_SERVICE_NAMES,
    V1_SERVICE_NAME,
    V1ALPHA_SERVICE_NAME,
    DescriptorSource,
    ReflectionServicer,
    contract_descriptor_set,
)
from switchboard.product.v1 import product_service_pb2
from switchboard.registry.v1 import registry_service_pb2
from switchboard.user.v1 import user_service_pb2, user_service_pb2_grpc

USER_SERVICE = "switchboard.user.v1.UserService"
USER_SERVICE_FILE = "switchboard/user/v1/user_service.proto"
HEALTH = "grpc.health.v1.Health"
SERVICE_COMMENT = "UserService manages users."
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
SERVICE_PATH = [6, 0]  # FileDescriptorProto.service[0] in SourceCodeInfo.Location.path

ReflectionCall = Any  # an async call taking a request iterator (types for grpc.aio are loose)


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    """A channel to a server that serves the (unimplemented) generated UserService."""
    user = Service(
        # The generated base answers UNIMPLEMENTED: reflection needs no implementation.
        user_service_pb2_grpc.UserServiceServicer(),  # type: ignore[abstract]
        user_service_pb2_grpc.add_UserServiceServicer_to_server,
        USER_SERVICE,
    )
    async with serving([user]) as server, grpc.aio.insecure_channel(server.address) as channel:
        yield channel


async def reflect(channel: grpc.aio.Channel, service: str, *requests: Any) -> list[Any]:
    """Send ``requests`` on one ServerReflectionInfo stream of ``service``; all the replies."""
    call = channel.stream_stream(
        f"/{service}/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )

    async def stream() -> AsyncIterator[Any]:
        for request in requests:
            yield request

    return [reply async for reply in call(stream(), timeout=10)]


def request(**fields: Any) -> Any:
    return reflection_pb2.ServerReflectionRequest(**fields)


def files_of(reply: Any) -> list[descriptor_pb2.FileDescriptorProto]:
    blobs = reply.file_descriptor_response.file_descriptor_proto
    return [descriptor_pb2.FileDescriptorProto.FromString(blob) for blob in blobs]


def leading_comment(file: descriptor_pb2.FileDescriptorProto, path: list[int]) -> str:
    for location in file.source_code_info.location:
        if list(location.path) == path:
            return location.leading_comments
    return ""


@pytest.mark.parametrize("service", REFLECTION_SERVICE_NAMES)
async def test_both_versions_list_the_services(channel: grpc.aio.Channel, service: str) -> None:
    [reply] = await reflect(channel, service, request(list_services=""))
    names = {s.name for s in reply.list_services_response.service}
    assert names == {USER_SERVICE, HEALTH, V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME}


@pytest.mark.parametrize("service", REFLECTION_SERVICE_NAMES)
async def test_a_contract_service_comes_with_its_comment(
    channel: grpc.aio.Channel, service: str
) -> None:
    [reply] = await reflect(channel, service, request(file_containing_symbol=USER_SERVICE))
    first, *dependencies = files_of(reply)
    assert first.name == USER_SERVICE_FILE
    assert SERVICE_COMMENT in leading_comment(first, SERVICE_PATH)
    assert {f.name for f in dependencies} == {
        "switchboard/user/v1/user.proto",
        "google/protobuf/field_mask.proto",
        "google/protobuf/timestamp.proto",
    }


async def test_files_by_name_and_nested_symbols_are_found(channel: grpc.aio.Channel) -> None:
    replies = await reflect(
        channel,
        V1_SERVICE_NAME,
        request(file_by_filename="switchboard/user/v1/user.proto"),
        request(file_containing_symbol=f"{USER_SERVICE}.GetUser"),
        request(file_containing_symbol="switchboard.user.v1.User"),
    )
    names = [files_of(reply)[0].name for reply in replies]
    assert names == ["switchboard/user/v1/user.proto", USER_SERVICE_FILE, names[0]]
    assert all(reply.original_request for reply in replies)


async def test_health_is_still_served_from_the_default_pool(channel: grpc.aio.Channel) -> None:
    [reply] = await reflect(channel, V1_SERVICE_NAME, request(file_containing_symbol=HEALTH))
    [health] = files_of(reply)
    assert health.name.endswith("/v1/health.proto")
    assert health.service[0].name == "Health"


async def test_unknown_things_are_not_found_in_band(channel: grpc.aio.Channel) -> None:
    extension = reflection_pb2.ExtensionRequest(containing_type="no.Such", extension_number=7)
    asks = [
        request(file_containing_symbol="no.such.Service"),
        request(file_by_filename="no/such.proto"),
        request(file_containing_extension=extension),
        request(all_extension_numbers_of_type="no.Such"),
    ]
    replies = await reflect(channel, V1ALPHA_SERVICE_NAME, *asks)
    assert [r.error_response.error_code for r in replies] == [NOT_FOUND] * 4
    assert [r.original_request for r in replies] == asks
    assert "no.such.Service" in replies[0].error_response.error_message


async def test_a_message_without_extensions_has_none(channel: grpc.aio.Channel) -> None:
    ask = request(all_extension_numbers_of_type="switchboard.user.v1.User")
    [reply] = await reflect(channel, V1_SERVICE_NAME, ask)
    answer = reply.all_extension_numbers_response
    assert answer.base_type_name == "switchboard.user.v1.User"
    assert list(answer.extension_number) == []


def test_an_empty_request_is_an_invalid_argument() -> None:
    reply = ReflectionServicer([]).answer(request())
    assert reply.error_response.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


def test_the_descriptor_set_holds_every_contract_with_source_info() -> None:
    files = {f.name: f for f in contract_descriptor_set().file}
    contracts = [name for name in files if name.startswith("switchboard/")]
    assert len(contracts) == 6
    assert all(files[name].source_code_info.location for name in contracts)


def test_a_served_contract_is_the_runtime_descriptor_plus_comments() -> None:
    # json_name included: with protoc's derived json_name grpcurl would print displayName.
    source = DescriptorSource(contract_descriptor_set())
    for module in (user_service_pb2, product_service_pb2, registry_service_pb2):
        for file in [module.DESCRIPTOR, *module.DESCRIPTOR.dependencies]:
            served = descriptor_pb2.FileDescriptorProto.FromString(source.closure(file.name)[0])
            assert served.source_code_info.location, file.name
            served.ClearField("source_code_info")
            runtime = descriptor_pb2.FileDescriptorProto()
            file.CopyToProto(runtime)
            # The protobuf runtime's own well-known types keep json_name (same as the name).
            if file.name.startswith("switchboard/"):
                assert served == runtime, file.name


def test_without_the_descriptor_set_the_default_pool_still_answers() -> None:
    source = DescriptorSource(descriptor_pb2.FileDescriptorSet())
    [user_file, *_] = source.closure(source.file_containing_symbol(USER_SERVICE))
    proto = descriptor_pb2.FileDescriptorProto.FromString(user_file)
    assert proto.name == USER_SERVICE_FILE
    assert not proto.HasField("source_code_info")
