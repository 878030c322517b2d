"""The stubs packages ``make stubs`` builds, used from a fresh project outside the repo.

Each test writes a tiny project into a temporary directory and depends on the
stubs the way README's "Stubs for other languages" shows: Go through a
workspace (``go work init . <repo>/generated/go``), TypeScript through
``npm install <repo>/generated/ts`` (copied, not linked), Java through a
``<dependency>`` on the artifact installed into ``.tools/m2``. It then builds
and runs the project offline (every dependency is already in the caches
``make stubs`` filled), so nothing else is fetched.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from harness import REPO
from tests._support import require_tools
from tests.interop._clients import CLIENTS, run_bounded

pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]

TOOLS = REPO / ".tools"
EXPECTED = "ada@example.com switchboard.user.v1.UserService"
"""What each consumer prints: a field of a generated message and the service's full name."""

GO_MAIN = """package main

import (
	"fmt"

	userv1 "github.com/switchboard-dev/switchboard/generated/go/switchboard/user/v1"
)

func main() {
	u := &userv1.User{Email: "ada@example.com"}
	fmt.Println(u.GetEmail(), userv1.UserService_ServiceDesc.ServiceName)
}
"""

TS_MAIN = """import { credentials } from "@grpc/grpc-js";
import { User } from "@switchboard/contracts/switchboard/user/v1/user";
import { UserServiceClient } from "@switchboard/contracts/switchboard/user/v1/user_service";

const user: User = User.fromPartial({ email: "ada@example.com" });
const client = new UserServiceClient("127.0.0.1:1", credentials.createInsecure());
console.log(user.email, UserServiceClient.serviceName);
client.close();
"""

TS_CONFIG = {
    "compilerOptions": {
        "target": "ES2022",
        "module": "node16",
        "moduleResolution": "node16",
        "strict": True,
        "outDir": "out",
        "types": ["node"],
    },
    "include": ["index.ts"],
}

JAVA_MAIN = """package example;

import dev.switchboard.user.v1.User;
import dev.switchboard.user.v1.UserServiceGrpc;

public final class Consumer {
  public static void main(String[] args) {
    User user = User.newBuilder().setEmail("ada@example.com").build();
    System.out.println(user.getEmail() + " " + UserServiceGrpc.SERVICE_NAME);
  }
}
"""


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run ``command`` (bounded), fail with its output unless it exits 0; its stdout."""
    result = run_bounded(command, cwd, env)
    report = f"{' '.join(command)}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, report
    assert "\x1b" not in result.stdout + result.stderr, f"escape codes in the output: {report}"
    return result.stdout


def _require(language: str, built_languages: list[str]) -> None:
    require_tools("make", *CLIENTS[language].tools, why=f"the {language} stubs package")
    assert language in built_languages, "the toolchain is there, so the stubs must be built"


def test_go_module_builds_in_a_fresh_workspace(built_languages: list[str], tmp_path: Path) -> None:
    _require("go", built_languages)
    (tmp_path / "go.mod").write_text("module example.com/consumer\n\ngo 1.26.0\n")
    (tmp_path / "main.go").write_text(GO_MAIN)
    # Offline: every module is in the cache `make stubs` filled; nothing may be fetched.
    env = {
        "GOMODCACHE": str(TOOLS / "go" / "mod"),
        "GOCACHE": str(TOOLS / "go" / "cache"),
        "GOFLAGS": "-modcacherw",
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "GOWORK": "",
    }
    _run(["go", "work", "init", ".", str(REPO / "generated" / "go")], tmp_path, env)
    _run(["go", "build", "-o", "consumer", "."], tmp_path, env)
    assert _run([str(tmp_path / "consumer")], tmp_path).strip() == EXPECTED


def test_npm_package_installs_type_checks_and_runs(
    built_languages: list[str], tmp_path: Path
) -> None:
    _require("ts", built_languages)
    package = {
        "name": "consumer",
        "version": "0.0.0",
        "private": True,
        "dependencies": {"@grpc/grpc-js": "1.14.7"},
        "devDependencies": {"@types/node": "20.19.43", "typescript": "5.9.3"},
    }
    (tmp_path / "package.json").write_text(json.dumps(package))
    (tmp_path / "tsconfig.json").write_text(json.dumps(TS_CONFIG))
    (tmp_path / "index.ts").write_text(TS_MAIN)
    npm = ["npm", "--no-audit", "--no-fund", "--loglevel=error", "--prefer-offline"]
    _run([*npm, "install"], tmp_path)
    _run([*npm, "install", "--install-links", str(REPO / "generated" / "ts")], tmp_path)
    recorded = json.loads((tmp_path / "package.json").read_text())["dependencies"]
    assert recorded["@switchboard/contracts"].startswith("file:"), recorded
    installed = tmp_path / "node_modules" / "@switchboard" / "contracts"
    assert installed.is_dir() and not installed.is_symlink(), "npm must copy the package"
    _run([str(tmp_path / "node_modules" / ".bin" / "tsc"), "-p", "."], tmp_path)
    assert _run(["node", "out/index.js"], tmp_path).strip() == EXPECTED


def test_maven_artifact_compiles_and_runs_in_a_fresh_project(
    built_languages: list[str], tmp_path: Path
) -> None:
    _require("java", built_languages)
    pom = (REPO / "tests" / "interop" / "consumer-pom.xml").read_text()
    (tmp_path / "pom.xml").write_text(pom)
    source = tmp_path / "src" / "main" / "java" / "example"
    source.mkdir(parents=True)
    (source / "Consumer.java").write_text(JAVA_MAIN)
    mvn = ["mvn", "-B", "-q", "-o", f"-Dmaven.repo.local={TOOLS / 'm2'}"]
    env = {"MAVEN_OPTS": "-Djansi.noreset=true"}
    _run([*mvn, "package"], tmp_path, env)
    classpath = (tmp_path / "target" / "classpath.txt").read_text().strip()
    java = shutil.which("java") or "java"
    command = [java, "-cp", f"target/classes{os.pathsep}{classpath}", "example.Consumer"]
    assert _run(command, tmp_path).strip() == EXPECTED
