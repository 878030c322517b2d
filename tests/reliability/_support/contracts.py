"""Every RPC of every Switchboard service, with the status codes its contract comment names.

The allowed error codes of an RPC are read from the comment above it in
``protos/`` (the comments are the spec), so a test that says "never anything
the contract does not name" follows the contract as it changes.

Example::

    for rpc in all_rpcs():
        code, details = await call_raw(channel_for(rpc.service_key), rpc, b"\\xff")
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import grpc
import grpc.aio
from google.protobuf import descriptor, message_factory
from google.protobuf.message import Message

from harness import REPO
from switchboard.product.v1 import product_service_pb2
from switchboard.registry.v1 import registry_service_pb2
from switchboard.user.v1 import user_service_pb2
from tests.reliability._support.strategies import descriptor_of, message_type_of

__all__ = ["Rpc", "all_rpcs", "call_raw", "encode_at", "string_paths"]

_MODULES = {
    "registry": (registry_service_pb2, "registry/v1/registry_service.proto"),
    "user": (user_service_pb2, "user/v1/user_service.proto"),
    "product": (product_service_pb2, "product/v1/product_service.proto"),
}
_CODE_NAMES = {code.name for code in grpc.StatusCode}
_RPC_LINE = re.compile(r"^\s*rpc\s+(\w+)\s*\(")


@dataclass(frozen=True)
class Rpc:
    """One method: where it lives, its request type and its contract's error codes."""

    service_key: str  # "registry" | "user" | "product"
    name: str
    path: str
    request_type: type[Message]
    client_streaming: bool
    server_streaming: bool
    contract_codes: frozenset[grpc.StatusCode]

    @property
    def request_descriptor(self) -> descriptor.Descriptor:
        return descriptor_of(self.request_type)

    def __str__(self) -> str:
        return f"{self.service_key}.{self.name}"


@cache
def all_rpcs() -> tuple[Rpc, ...]:
    """Every RPC of the registry, user and product services."""
    rpcs: list[Rpc] = []
    for key, (module, proto) in _MODULES.items():
        comments = _rpc_comments(proto)
        for service in module.DESCRIPTOR.services_by_name.values():
            rpcs.extend(_rpc(key, service, method, comments) for method in service.methods)
    return tuple(rpcs)


def _rpc(
    key: str,
    service: descriptor.ServiceDescriptor,
    method: descriptor.MethodDescriptor,
    comments: dict[str, str],
) -> Rpc:
    named = set(re.findall(r"\b[A-Z][A-Z_]+\b", comments.get(method.name, "")))
    return Rpc(
        service_key=key,
        name=method.name,
        path=f"/{service.full_name}/{method.name}",
        request_type=message_factory.GetMessageClass(method.input_type),
        client_streaming=method.client_streaming,
        server_streaming=method.server_streaming,
        contract_codes=frozenset(grpc.StatusCode[name] for name in named & _CODE_NAMES),
    )


def _rpc_comments(proto: str) -> dict[str, str]:
    """RPC name -> the ``//`` comment lines right above its ``rpc`` line."""
    lines = (REPO / "protos" / "switchboard" / proto).read_text().splitlines()
    comments: dict[str, str] = {}
    for index, line in enumerate(lines):
        match = _RPC_LINE.match(line)
        if not match:
            continue
        block: list[str] = []
        for above in reversed(lines[:index]):
            if not above.strip().startswith("//"):
                break
            block.append(above.strip().removeprefix("//"))
        comments[match[1]] = " ".join(reversed(block))
    return comments


# --- raw calls ------------------------------------------------------------------------


async def call_raw(
    channel: grpc.aio.Channel,
    rpc: Rpc,
    payload: bytes,
    *,
    timeout_s: float = 5.0,
    open_s: float = 0.3,
    metadata: tuple[tuple[str, str], ...] = (),
) -> tuple[grpc.StatusCode, str]:
    """Send ``payload`` as the request bytes of ``rpc``; return the status code and details.

    A server stream still open after ``open_s`` without a message (a watch
    waiting for changes) counts as accepted: OK. A bidirectional stream
    answers every request, so it gets the whole ``timeout_s``.
    """
    # Callables without serializers send and receive bytes; grpc's stubs cannot say so.
    call: Any
    try:
        if not rpc.server_streaming:
            call = channel.unary_unary(rpc.path)
            await call(payload, timeout=timeout_s, metadata=metadata)
        elif not rpc.client_streaming:
            call = channel.unary_stream(rpc.path)
            await _first_or_open(call(payload, timeout=timeout_s, metadata=metadata), open_s)
        else:
            call = channel.stream_stream(rpc.path)
            bidi = call(timeout=timeout_s, metadata=metadata)
            await bidi.write(payload)
            await _first_or_open(bidi, timeout_s)
    except grpc.aio.AioRpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


async def _first_or_open(call: Any, open_s: float) -> None:
    try:
        await asyncio.wait_for(call.read(), open_s)
    except TimeoutError:
        pass
    finally:
        call.cancel()


# --- hand-made encodings --------------------------------------------------------------


def string_paths(
    message: descriptor.Descriptor, depth: int = 3
) -> list[tuple[descriptor.FieldDescriptor, ...]]:
    """Every path (field chain) from ``message`` to a string field, nested up to ``depth``.

    Example: CreateUserRequest → [(user, email), (user, display_name), ..., (request_id,)].
    """
    paths: list[tuple[descriptor.FieldDescriptor, ...]] = []
    for field in message.fields:
        if field.type == descriptor.FieldDescriptor.TYPE_STRING:
            paths.append((field,))
        elif field.type == descriptor.FieldDescriptor.TYPE_MESSAGE and depth > 1:
            nested = string_paths(message_type_of(field), depth - 1)
            paths.extend((field, *rest) for rest in nested)
    return paths


def encode_at(path: tuple[descriptor.FieldDescriptor, ...], payload: bytes) -> bytes:
    """The bytes of a message whose field at ``path`` (length-delimited) holds ``payload``.

    Example: ``encode_at((request_id_field,), b"\\xff")`` → ``b"\\x12\\x01\\xff"``.
    """
    encoded = payload
    for field in reversed(path):
        encoded = _varint(field.number << 3 | 2) + _varint(len(encoded)) + encoded
    return encoded


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
