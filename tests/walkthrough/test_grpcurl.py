"""grpcurl against every running service through server reflection alone.

grpcurl runs in an empty directory and is given no ``-proto``/``-import-path``:
whatever it knows about a service it learnt from the service's reflection.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness import REPO, Platform

pytestmark = pytest.mark.e2e

CALL_TIMEOUT_S = 20.0
SERVICES = {
    "registry": "switchboard.registry.v1.RegistryService",
    "user": "switchboard.user.v1.UserService",
    "product": "switchboard.product.v1.ProductService",
}
HEALTH = "grpc.health.v1.Health"
REFLECTION = "grpc.reflection.v1alpha.ServerReflection"
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
# The start of each service's comment in its contract.
SERVICE_COMMENTS = {
    "registry": "RegistryService keeps the soft state of which instances",
    "user": "UserService manages users.",
    "product": "ProductService manages products and their stock.",
}
ACCESS_LOG_WAIT_S = 10.0  # a reflection stream is logged when grpcurl closes it
GRPCURL_EXIT_BASE = 64  # grpcurl exits with 64 + the gRPC status code of a failed call


def grpcurl(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``grpcurl -plaintext ARGS`` (found on PATH, which ``tools_env`` sets)."""
    return subprocess.run(
        ["grpcurl", "-plaintext", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT_S,
    )


def contract_rpcs(name: str) -> set[str]:
    """The RPC names that protos/switchboard/<name>/v1/<name>_service.proto declares."""
    proto = REPO / "protos" / "switchboard" / name / "v1" / f"{name}_service.proto"
    return set(re.findall(r"^\s*rpc (\w+)\(", proto.read_text(), re.MULTILINE))


@pytest.mark.parametrize("name", SERVICES)
def test_list_names_the_service_health_and_reflection(
    name: str, platform: Platform, tools_env: dict[str, str], tmp_path: Path
) -> None:
    result = grpcurl(tools_env, tmp_path, platform.ports.address(name), "list")
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) >= {SERVICES[name], HEALTH, REFLECTION, REFLECTION_V1}


@pytest.mark.parametrize("name", SERVICES)
def test_describe_shows_every_rpc_of_the_contract(
    name: str, platform: Platform, tools_env: dict[str, str], tmp_path: Path
) -> None:
    result = grpcurl(tools_env, tmp_path, platform.ports.address(name), "describe", SERVICES[name])
    assert result.returncode == 0, result.stderr
    assert f"{SERVICES[name]} is a service:" in result.stdout
    described = set(re.findall(r"^\s*rpc (\w+) \(", result.stdout, re.MULTILINE))
    assert described == contract_rpcs(name)


@pytest.mark.parametrize("name", SERVICES)
def test_describe_shows_the_contract_comments(
    name: str, platform: Platform, tools_env: dict[str, str], tmp_path: Path
) -> None:
    result = grpcurl(tools_env, tmp_path, platform.ports.address(name), "describe", SERVICES[name])
    assert result.returncode == 0, result.stderr
    assert f"// {SERVICE_COMMENTS[name]}" in result.stdout


def test_grpcurl_finds_reflection_v1_at_the_first_try(
    platform: Platform, tools_env: dict[str, str], tmp_path: Path
) -> None:
    result = grpcurl(tools_env, tmp_path, platform.ports.address("user"), "list")
    assert result.returncode == 0, result.stderr
    platform.wait_for(f"method=/{REFLECTION_V1}/ServerReflectionInfo code=OK", ACCESS_LOG_WAIT_S)
    assert f"/{REFLECTION_V1}/ServerReflectionInfo code=UNIMPLEMENTED" not in platform.output()


@pytest.mark.parametrize("name", SERVICES)
def test_health_check_is_serving_for_the_server_and_the_service(
    name: str, platform: Platform, tools_env: dict[str, str], tmp_path: Path
) -> None:
    address = platform.ports.address(name)
    for service in ("", SERVICES[name]):
        body = json.dumps({"service": service})
        result = grpcurl(tools_env, tmp_path, "-d", body, address, f"{HEALTH}/Check")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"status": "SERVING"}


def failed_call(
    platform: Platform, env: dict[str, str], cwd: Path, name: str, method: str, body: object
) -> subprocess.CompletedProcess[str]:
    """Call ``method`` of service ``name``, expecting it to fail."""
    address = platform.ports.address(name)
    return grpcurl(env, cwd, "-d", json.dumps(body), address, f"{SERVICES[name]}/{method}")


def test_a_bad_email_prints_the_bad_request_field_violation(
    platform: Platform, tools_env: dict[str, str], tmp_path: Path
) -> None:
    body = {"user": {"email": "not-an-email", "display_name": "Bob"}}
    result = failed_call(platform, tools_env, tmp_path, "user", "CreateUser", body)
    assert result.returncode == GRPCURL_EXIT_BASE + 3, result  # INVALID_ARGUMENT
    assert "Code: InvalidArgument" in result.stderr
    assert "type.googleapis.com/google.rpc.BadRequest" in result.stderr
    assert '"field": "user.email"' in result.stderr
    assert "Traceback" not in result.stderr


def test_format_error_gives_the_status_as_json(
    platform: Platform, tools_env: dict[str, str], tmp_path: Path
) -> None:
    address = platform.ports.address("user")
    body = json.dumps({"id": "nobody-here"})
    method = f"{SERVICES['user']}/GetUser"
    result = grpcurl(tools_env, tmp_path, "-format-error", "-d", body, address, method)
    assert result.returncode == GRPCURL_EXIT_BASE + 5, result  # NOT_FOUND
    status: dict[str, Any] = json.loads(result.stderr)
    assert status["code"] == 5
    details = {d["@type"].rpartition("/")[2]: d for d in status["details"]}
    assert details["google.rpc.ResourceInfo"]["resource_name"] == "nobody-here"
    assert details["google.rpc.ErrorInfo"]["reason"] == "USER_NOT_FOUND"


def test_an_unknown_seller_is_a_failed_precondition_with_its_reason(
    platform: Platform, tools_env: dict[str, str], tmp_path: Path
) -> None:
    product = {
        "sku": "GHOST-1",
        "name": "Sold by nobody",
        "price": {"currency_code": "EUR", "amount_minor": "100"},
        "stock": "1",
        "seller_id": "nobody-here",
    }
    result = failed_call(
        platform, tools_env, tmp_path, "product", "CreateProduct", {"product": product}
    )
    assert result.returncode == GRPCURL_EXIT_BASE + 9, result  # FAILED_PRECONDITION
    assert "Code: FailedPrecondition" in result.stderr
    assert '"reason": "SELLER_NOT_FOUND"' in result.stderr
