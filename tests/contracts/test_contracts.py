"""The contracts compile, lint clean, match the committed stubs, and have every RPC.

The RPC table is checked through the descriptor pool of the generated modules,
not by searching the .proto text.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FieldDescriptor, ServiceDescriptor

# Importing the modules registers their files in the default pool.
from switchboard.product.v1 import product_service_pb2 as _product  # noqa: F401
from switchboard.registry.v1 import registry_service_pb2 as _registry  # noqa: F401
from switchboard.user.v1 import user_service_pb2 as _user  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# (client streaming, server streaming) per RPC, for every service the issues name.
UNARY, SERVER_STREAM, BIDI = (False, False), (False, True), (True, True)
EXPECTED: dict[str, dict[str, tuple[bool, bool]]] = {
    "switchboard.registry.v1.RegistryService": {
        "Register": UNARY,
        "Heartbeat": UNARY,
        "KeepAlive": BIDI,
        "Deregister": UNARY,
        "Resolve": UNARY,
        "Watch": SERVER_STREAM,
        "ListServices": UNARY,
    },
    "switchboard.user.v1.UserService": {
        "CreateUser": UNARY,
        "GetUser": UNARY,
        "ListUsers": UNARY,
        "UpdateUser": UNARY,
        "DeleteUser": UNARY,
        "WatchUsers": SERVER_STREAM,
    },
    "switchboard.product.v1.ProductService": {
        "CreateProduct": UNARY,
        "GetProduct": UNARY,
        "ListProducts": UNARY,
        "UpdateProduct": UNARY,
        "DeleteProduct": UNARY,
        "WatchProducts": SERVER_STREAM,
        "ReserveStock": UNARY,
        "ReleaseStock": UNARY,
    },
}
MUTATIONS = ("Create", "Update", "Delete", "ReserveStock", "ReleaseStock")


def _service(name: str) -> ServiceDescriptor:
    return descriptor_pool.Default().FindServiceByName(name)


def _message_of(field: FieldDescriptor) -> str:
    assert field.message_type is not None, field.full_name
    return field.message_type.full_name


def _run(*cmd: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("service_name", sorted(EXPECTED))
def test_every_rpc_exists_with_its_streaming_shape(service_name: str) -> None:
    service = _service(service_name)
    shapes = {m.name: (m.client_streaming, m.server_streaming) for m in service.methods}
    assert shapes == EXPECTED[service_name]


@pytest.mark.parametrize("service_name", sorted(EXPECTED))
def test_each_rpc_has_its_own_request_and_response(service_name: str) -> None:
    for method in _service(service_name).methods:
        assert method.input_type.name == f"{method.name}Request"
        assert method.output_type.name == f"{method.name}Response"


@pytest.mark.parametrize(
    "service_name", ["switchboard.user.v1.UserService", "switchboard.product.v1.ProductService"]
)
def test_standard_method_conventions(service_name: str) -> None:
    """Lists page, updates carry a FieldMask, mutations of resources carry a request_id."""
    for method in _service(service_name).methods:
        fields = method.input_type.fields_by_name
        if method.name.startswith("List"):
            assert {"page_size", "page_token"} <= set(fields)
            assert "next_page_token" in method.output_type.fields_by_name
        if method.name.startswith("Update"):
            assert _message_of(fields["update_mask"]) == "google.protobuf.FieldMask"
        if method.name.startswith(MUTATIONS):
            assert fields["request_id"].type == FieldDescriptor.TYPE_STRING


def test_times_are_timestamps_and_money_is_minor_units() -> None:
    pool = descriptor_pool.Default()
    product = pool.FindMessageTypeByName("switchboard.product.v1.Product")
    user = pool.FindMessageTypeByName("switchboard.user.v1.User")
    for message in (product, user):
        for name in ("create_time", "update_time"):
            assert _message_of(message.fields_by_name[name]) == "google.protobuf.Timestamp"
    money = product.fields_by_name["price"].message_type
    assert money is not None
    assert money.fields_by_name["amount_minor"].type == FieldDescriptor.TYPE_INT64
    assert money.fields_by_name["currency_code"].type == FieldDescriptor.TYPE_STRING


def test_enum_zero_values_are_unspecified() -> None:
    pool = descriptor_pool.Default()
    files = [
        "switchboard/registry/v1/instance.proto",
        "switchboard/user/v1/user.proto",
        "switchboard/product/v1/product.proto",
    ]
    enums = [e for f in files for e in pool.FindFileByName(f).enum_types_by_name.values()]
    assert enums, "the contracts define enums"
    for enum in enums:
        assert enum.values_by_number[0].name.endswith("_UNSPECIFIED"), enum.full_name


def test_contracts_compile_with_bundled_protoc(tmp_path: Path) -> None:
    protos = sorted(str(p.relative_to(ROOT / "protos")) for p in (ROOT / "protos").rglob("*.proto"))
    result = _run(
        sys.executable, "-m", "grpc_tools.protoc", "-Iprotos", f"--python_out={tmp_path}",
        *[f"protos/{p}" for p in protos],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(list(tmp_path.rglob("*_pb2.py"))) == len(protos)


def test_buf_lint_is_clean() -> None:
    result = _run(BIN / "buf", "lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_lint_rejects_an_uncommented_field(tmp_path: Path) -> None:
    """The COMMENTS rules are really on: a field without a comment fails lint."""
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    proto = tmp_path / "protos/switchboard/user/v1/user.proto"
    text = proto.read_text().replace(
        "  string etag = 6;\n", "  string etag = 6;\n  string nickname = 7;\n"
    )
    proto.write_text(text)
    result = _run(BIN / "buf", "lint", cwd=tmp_path)
    assert result.returncode != 0
    assert "nickname" in result.stdout


def test_buf_breaking_guards_v1(tmp_path: Path) -> None:
    """Deleting a field of a v1 message is a breaking change that buf reports."""
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    unchanged = _run(BIN / "buf", "breaking", tmp_path, "--against", ROOT)
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    proto = tmp_path / "protos/switchboard/user/v1/user.proto"
    proto.write_text(proto.read_text().replace("  string display_name = 3;\n", ""))
    broken = _run(BIN / "buf", "breaking", tmp_path, "--against", ROOT)
    assert broken.returncode != 0
    assert 'field "3" with name "display_name"' in broken.stdout


def test_generated_python_is_fresh() -> None:
    result = _run("make", "-s", "check-generated")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("damage", ["edit", "extra", "missing"])
def test_check_generated_catches_a_stale_tree(tmp_path: Path, damage: str) -> None:
    stale = tmp_path / "python"
    shutil.copytree(ROOT / "generated/python", stale, ignore=shutil.ignore_patterns("__pycache__"))
    target = stale / "switchboard/user/v1/user_pb2.py"
    if damage == "edit":
        target.write_text(target.read_text() + "# hand edit\n")
    elif damage == "extra":
        (stale / "switchboard/user/v1/extra_pb2.py").write_text("")
    else:
        target.unlink()
    result = _run("make", "-s", "check-generated", f"GEN_PY={stale}")
    assert result.returncode != 0
    assert "stale" in result.stderr
