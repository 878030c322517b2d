"""Server reflection, v1 and v1alpha, that serves the contracts WITH their comments.

grpc_reflection (v1alpha only) serializes files with ``FileDescriptor.CopyToProto``,
which drops ``source_code_info``: ``grpcurl describe`` then shows no comments, and
grpcurl's first try, ``grpc.reflection.v1.ServerReflection``, is UNIMPLEMENTED.
This servicer answers both names (their messages are wire-identical, so the
v1alpha classes serve v1 too) from ``switchboard/descriptors.binpb`` — the
FileDescriptorSet ``make protos`` writes with source info — and falls back to
the default descriptor pool for every other file (grpc.health.v1, reflection).

Example::

    add_reflection(server, ["helloworld.Greeter", HEALTH_SERVICE_NAME])
    # grpcurl -plaintext HOST:PORT describe helloworld.Greeter  -> with comments
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from functools import cache
from importlib.resources import files
from typing import Any, TypeVar

import grpc
import grpc.aio
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection_pb2  # type: ignore[import-untyped, unused-ignore]

__all__ = [
    "REFLECTION_SERVICE_NAMES",
    "V1ALPHA_SERVICE_NAME",
    "V1_SERVICE_NAME",
    "DescriptorSource",
    "ReflectionServicer",
    "add_reflection",
    "contract_descriptor_set",
]

V1ALPHA_SERVICE_NAME: str = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"].full_name
V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
REFLECTION_SERVICE_NAMES: tuple[str, str] = (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)

_METHOD = "ServerReflectionInfo"
_DESCRIPTOR_SET = "descriptors.binpb"
_log = logging.getLogger("switchboard.server")

T = TypeVar("T")


@cache
def contract_descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    """The contracts and their imports, with comments, as ``make protos`` wrote them.

    Read once per process. Empty (reflection then serves no comments) when the
    file is missing from the installed ``switchboard`` package.

    Example: ``[f.name for f in contract_descriptor_set().file]`` lists
    ``helloworld/helloworld.proto`` among others.
    """
    resource = files("switchboard") / _DESCRIPTOR_SET
    try:
        data = resource.read_bytes()
    except FileNotFoundError:
        _log.warning("switchboard/%s is missing: reflection serves no comments", _DESCRIPTOR_SET)
        return descriptor_pb2.FileDescriptorSet()
    return descriptor_pb2.FileDescriptorSet.FromString(data)


class DescriptorSource:
    """Serialized files and their dependency closure, looked up by file name or symbol.

    Files of ``descriptor_set`` are served with their ``source_code_info`` (and,
    like the _pb2 descriptors, without derived json_names); any other file
    comes from ``fallback`` (default: the default pool) via ``CopyToProto``.
    Each closure is serialized once, then served from a cache.

    Example::

        source = DescriptorSource(contract_descriptor_set())
        source.closure(source.file_containing_symbol("helloworld.Greeter"))
    """

    def __init__(
        self,
        descriptor_set: descriptor_pb2.FileDescriptorSet,
        fallback: descriptor_pool.DescriptorPool | None = None,
    ) -> None:
        self._stored = {f.name: _as_served(f) for f in descriptor_set.file}
        self._dependencies = {f.name: tuple(f.dependency) for f in descriptor_set.file}
        own = descriptor_pool.DescriptorPool()
        for data in self._stored.values():  # protoc writes dependencies first
            own.AddSerializedFile(data)
        self._pools = (own, fallback or descriptor_pool.Default())
        self._closures: dict[str, list[bytes]] = {}

    def file_by_name(self, name: str) -> str:
        """``name`` itself when some pool has it; raises KeyError otherwise."""
        return self._first(lambda pool: pool.FindFileByName(name)).name

    def file_containing_symbol(self, symbol: str) -> str:
        """The name of the file defining ``symbol``; raises KeyError when none does."""

        def find(pool: descriptor_pool.DescriptorPool) -> FileDescriptor:
            try:
                return pool.FindFileContainingSymbol(symbol)
            except KeyError:  # upb's pool does not look methods up: grpcurl describe S.Method
                return pool.FindMethodByName(symbol).containing_service.file

        return self._first(find).name

    def file_containing_extension(self, message: str, number: int) -> str:
        """The name of the file defining extension ``number`` of ``message``; or KeyError."""

        def find(pool: descriptor_pool.DescriptorPool) -> FileDescriptor:
            extension = pool.FindExtensionByNumber(pool.FindMessageTypeByName(message), number)
            return pool.FindFileContainingSymbol(extension.full_name)

        return self._first(find).name

    def extension_numbers(self, message: str) -> list[int]:
        """Sorted extension numbers of ``message``; raises KeyError for an unknown message."""

        def find(pool: descriptor_pool.DescriptorPool) -> list[int]:
            extensions = pool.FindAllExtensions(pool.FindMessageTypeByName(message))
            return sorted(extension.number for extension in extensions)

        return self._first(find)

    def closure(self, name: str) -> list[bytes]:
        """Serialized FileDescriptorProtos of ``name`` first, then all it imports, transitively."""
        if name not in self._closures:
            seen: dict[str, bytes] = {}
            self._collect(name, seen)
            self._closures[name] = list(seen.values())
        return self._closures[name]

    def _collect(self, name: str, seen: dict[str, bytes]) -> None:
        seen[name] = self._serialized(name)
        for dependency in self._dependencies_of(name):
            if dependency not in seen:  # imports are acyclic; this only skips repeats
                self._collect(dependency, seen)

    def _serialized(self, name: str) -> bytes:
        if name in self._stored:
            return self._stored[name]
        proto = descriptor_pb2.FileDescriptorProto()
        self._pools[1].FindFileByName(name).CopyToProto(proto)
        return proto.SerializeToString()

    def _dependencies_of(self, name: str) -> Iterable[str]:
        if name in self._dependencies:
            return self._dependencies[name]
        return [file.name for file in self._pools[1].FindFileByName(name).dependencies]

    def _first(self, find: Callable[[descriptor_pool.DescriptorPool], T]) -> T:
        """``find`` in our pool, then in the fallback; KeyError when neither has it."""
        try:
            return find(self._pools[0])
        except KeyError:
            return find(self._pools[1])


def _as_served(file: descriptor_pb2.FileDescriptorProto) -> bytes:
    """``file`` serialized without the json_name protoc derives from each field name.

    Why: grpcurl prints JSON with a field's json_name when the descriptor has
    one, else with its proto name; the _pb2 descriptors carry none, so keep
    grpcurl printing ``display_name`` (as the README shows), not ``displayName``.
    """
    served = descriptor_pb2.FileDescriptorProto()
    served.CopyFrom(file)
    for field in _fields(served.message_type, served.extension):
        if field.json_name == _derived_json_name(field.name):
            field.ClearField("json_name")
    return served.SerializeToString()


def _fields(messages: Iterable[Any], extensions: Iterable[Any]) -> Iterator[Any]:
    """Every field and extension of ``messages`` (nested ones too), then ``extensions``."""
    for message in messages:
        yield from _fields(message.nested_type, [*message.field, *message.extension])
    yield from extensions


def _derived_json_name(name: str) -> str:
    """protoc's default json_name: drop each ``_`` and capitalize the letter after it."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@cache
def _default_source() -> DescriptorSource:
    # Built once per process: servers made later (tests make many) share its maps and caches.
    return DescriptorSource(contract_descriptor_set())


class ReflectionServicer:
    """Answers ``ServerReflectionInfo`` streams for ``service_names``, v1 and v1alpha alike.

    Example: ``ReflectionServicer(["helloworld.Greeter"]).answer(request)``.
    """

    def __init__(
        self, service_names: Iterable[str], source: DescriptorSource | None = None
    ) -> None:
        self._list = reflection_pb2.ListServiceResponse(
            service=[reflection_pb2.ServiceResponse(name=n) for n in sorted(set(service_names))]
        )
        self._source = source or _default_source()

    async def ServerReflectionInfo(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        """One response per request, in order, as the reflection protocol asks."""
        async for request in requests:
            yield self.answer(request)

    def answer(self, request: Any) -> Any:
        """The ServerReflectionResponse to one ServerReflectionRequest (errors in-band)."""
        kind = request.WhichOneof("message_request")
        try:
            response = self._dispatch(kind, request)
        except KeyError:
            response = _error(grpc.StatusCode.NOT_FOUND, f"{kind} not found: {_subject(request)}")
        response.original_request.CopyFrom(request)
        return response

    def _dispatch(self, kind: str | None, request: Any) -> Any:
        source = self._source
        if kind == "list_services":
            return reflection_pb2.ServerReflectionResponse(list_services_response=self._list)
        if kind == "file_by_filename":
            return _files(source.closure(source.file_by_name(request.file_by_filename)))
        if kind == "file_containing_symbol":
            name = source.file_containing_symbol(request.file_containing_symbol)
            return _files(source.closure(name))
        if kind == "file_containing_extension":
            ext = request.file_containing_extension
            name = source.file_containing_extension(ext.containing_type, ext.extension_number)
            return _files(source.closure(name))
        if kind == "all_extension_numbers_of_type":
            return _extension_numbers(request.all_extension_numbers_of_type, source)
        return _error(grpc.StatusCode.INVALID_ARGUMENT, "no request in the message")


def add_reflection(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    """Serve reflection v1 and v1alpha on ``server``; both list ``service_names`` and themselves.

    Example: ``add_reflection(server, ["helloworld.Greeter"])``.
    """
    servicer = ReflectionServicer([*service_names, *REFLECTION_SERVICE_NAMES])
    handlers = {
        _METHOD: grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        )
    }
    for name in REFLECTION_SERVICE_NAMES:
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
        server.add_registered_method_handlers(name, handlers)


def _files(serialized: list[bytes]) -> Any:
    return reflection_pb2.ServerReflectionResponse(
        file_descriptor_response=reflection_pb2.FileDescriptorResponse(
            file_descriptor_proto=serialized
        )
    )


def _extension_numbers(message: str, source: DescriptorSource) -> Any:
    return reflection_pb2.ServerReflectionResponse(
        all_extension_numbers_response=reflection_pb2.ExtensionNumberResponse(
            base_type_name=message, extension_number=source.extension_numbers(message)
        )
    )


def _subject(request: Any) -> str:
    """What a failed request asked for, for the error message (e.g. a symbol's name)."""
    kind = request.WhichOneof("message_request")
    if kind == "file_containing_extension":
        ext = request.file_containing_extension
        return f"{ext.containing_type} extension {ext.extension_number}"
    return str(getattr(request, kind))


def _error(code: grpc.StatusCode, message: str) -> Any:
    return reflection_pb2.ServerReflectionResponse(
        error_response=reflection_pb2.ErrorResponse(error_code=code.value[0], error_message=message)
    )
