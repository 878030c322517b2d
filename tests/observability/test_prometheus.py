"""A real Prometheus scrapes real processes it finds through the registry's HTTP service discovery.

One scrape config (an ``http_sd_configs`` job pointing at the registry) and no
other: calls through the Switchboard client show up in Prometheus's query API
with go-grpc-prometheus's names, a user instance started later is discovered
and scraped, a SIGKILLed one leaves the registry's targets within TTL + 1 s (and
Prometheus's at its next discovery update), and
every metric the Grafana dashboard queries is one the processes export.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness import Launcher, Process, free_port
from services.runtime import Client, ClientConfig, NotFound, RegistryConfig
from services.user.client import UserClient
from tests.observability._support import (
    eventually,
    get_json,
    http_address,
    reachable,
    sample,
    scrape,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "switchboard.json"
TTL_S = 2.0
SD_REFRESH_S = 1
PROMETHEUS_UPDATE_THROTTLE_S = 5
GET_USER_CALLS = 7


def _prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        if os.environ.get("CI") == "true":
            raise AssertionError("prometheus is not installed: run `make tools-prometheus`")
        pytest.skip("prometheus is not installed: run `make tools-prometheus`")
    return found


@dataclass
class Prometheus:
    """A running Prometheus and its HTTP API."""

    url: str

    async def query(self, promql: str) -> list[dict[str, Any]]:
        """The result vector of an instant query."""
        answer = await get_json(
            f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        )
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    async def active_targets(self) -> set[str]:
        """The ``host:port`` of every active target."""
        answer = await get_json(f"{self.url}/api/v1/targets?state=active")
        return {t["discoveredLabels"]["__address__"] for t in answer["data"]["activeTargets"]}

    async def healthy_targets(self) -> set[str]:
        """Active targets whose last scrape succeeded."""
        answer = await get_json(f"{self.url}/api/v1/targets?state=active")
        return {
            t["discoveredLabels"]["__address__"]
            for t in answer["data"]["activeTargets"]
            if t["health"] == "up"
        }


@contextlib.contextmanager
def prometheus(tmp_path: Path, sd_url: str) -> Iterator[Prometheus]:
    """Start Prometheus with one http_sd_configs job; kill it on exit."""
    binary = _prometheus_binary()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "switchboard",
                        "scrape_interval": "1s",
                        "http_sd_configs": [
                            {"url": sd_url, "refresh_interval": f"{SD_REFRESH_S}s"}
                        ],
                    }
                ],
            }
        )
    )
    port = free_port()
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with Launcher(tmp_path) as launcher:  # killed on exit
        launcher.run_sync("prometheus", argv, listening=False)
        yield Prometheus(f"http://127.0.0.1:{port}")


@dataclass
class Stack:
    launch: Launcher
    registry: Process
    user: Process
    product: Process

    @property
    def registry_args(self) -> tuple[str, ...]:
        return ("--registry", self.registry.address, "--registry-ttl-s", str(TTL_S))


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with Launcher(tmp_path) as launch:
        registry = await launch.start("registry")
        reg = ("--registry", registry.address, "--registry-ttl-s", str(TTL_S))
        user = await launch.start("services.user", "--data-dir", str(tmp_path / "u"), *reg)
        product = await launch.start("services.product", "--data-dir", str(tmp_path / "p"), *reg)
        yield Stack(launch, registry, user, product)


async def _sd_targets(stack: Stack) -> set[str]:
    groups = await get_json(f"http://{http_address(stack.registry)}/sd/prometheus")
    return {target for group in groups for target in group["targets"]}


async def test_prometheus_scrapes_what_the_registry_lists(stack: Stack, tmp_path: Path) -> None:
    user_http, product_http = http_address(stack.user), http_address(stack.product)
    registered = await eventually(
        lambda: _sd_targets(stack), lambda t: {user_http, product_http} <= t, 10, "SD lists both"
    )
    assert registered == {user_http, product_http}
    config = ClientConfig(registry=RegistryConfig((stack.registry.address,)))
    async with Client(config) as client:
        users = UserClient(await client.connect("user", wait_s=5))
        ada = await users.create_user(email="ada@example.com", display_name="Ada")
        for _ in range(GET_USER_CALLS):
            assert (await users.get_user(ada.id)).id == ada.id
        with pytest.raises(NotFound):
            await users.get_user("nobody")

    sd_url = f"http://{http_address(stack.registry)}/sd/prometheus"
    with prometheus(tmp_path, sd_url) as prom:
        await eventually(lambda: reachable(f"{prom.url}/-/ready"), bool, 30, "Prometheus is ready")
        query = (
            'grpc_server_handled_total{grpc_service="switchboard.user.v1.UserService",'
            'grpc_method="GetUser",grpc_code="OK"}'
        )
        result = await eventually(
            lambda: prom.query(query), lambda r: len(r) == 1, 30, "GetUser OK in Prometheus"
        )
        assert float(result[0]["value"][1]) == GET_USER_CALLS
        assert result[0]["metric"]["service"] == "user"
        assert result[0]["metric"]["instance"] == user_http
        assert result[0]["metric"]["instance_id"]

        # A user instance started now is found and scraped with no config change.
        late = await stack.launch.start(
            "services.user", "--data-dir", str(tmp_path / "u2"), *stack.registry_args
        )
        late_http = http_address(late)
        await eventually(
            prom.healthy_targets, lambda t: late_http in t, 15, "the late instance is scraped"
        )
        up = await eventually(
            lambda: prom.query(f'up{{instance="{late_http}"}}'),
            lambda r: len(r) == 1,
            15,
            "up of the late instance",
        )
        assert up[0]["value"][1] == "1" and up[0]["metric"]["service"] == "user"

        # SIGKILL: no deregistration; the lease expires within the TTL, then SD drops it.
        late.kill()
        await eventually(
            lambda: _sd_targets(stack), lambda t: late_http not in t, TTL_S + 1, "SD drops it"
        )
        # Prometheus then needs its SD refresh, plus up to 5 s: its discovery manager
        # hands target updates to the scrape manager at most every 5 s (upstream constant).
        await eventually(
            prom.active_targets,
            lambda t: late_http not in t,
            SD_REFRESH_S + PROMETHEUS_UPDATE_THROTTLE_S + 1,
            "Prometheus drops the killed instance",
        )


async def test_dashboard_queries_only_exported_metrics(stack: Stack) -> None:
    exported: set[str] = set()
    for proc in (stack.registry, stack.user, stack.product):
        exported |= _metric_names(await scrape(http_address(proc)))
    used = _dashboard_metrics()
    assert used, "the dashboard queries no metric"
    assert used <= exported, f"not exported: {sorted(used - exported)}"


async def test_failing_calls_are_counted_with_their_code(stack: Stack) -> None:
    config = ClientConfig(registry=RegistryConfig((stack.registry.address,)))
    async with Client(config) as client:
        users = UserClient(await client.connect("user", wait_s=5))
        for _ in range(3):
            with pytest.raises(NotFound):
                await users.get_user("nobody")
    text = await scrape(http_address(stack.user))
    labels = {"grpc_service": "switchboard.user.v1.UserService", "grpc_method": "GetUser"}
    assert sample(text, "grpc_server_handled_total", grpc_code="NOT_FOUND", **labels) == 3
    assert sample(text, "grpc_server_started_total", **labels) == 3
    assert sample(text, "grpc_server_handling_seconds_count", **labels) == 3


_TYPE_LINE = re.compile(r"^# TYPE (\S+) (\w+)$", re.MULTILINE)
_SUFFIXES = {
    "histogram": ("_bucket", "_count", "_sum"),
    "counter": ("_total",),
    "summary": ("_count", "_sum"),
}


def _metric_names(exposition: str) -> set[str]:
    """Every series name an exposition can carry (a histogram's _bucket/_count/_sum too)."""
    names: set[str] = set()
    for name, kind in _TYPE_LINE.findall(exposition):
        names.add(name)
        names.update(name + suffix for suffix in _SUFFIXES.get(kind, ()))
    return names


_PROMQL_WORD = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_PROMQL_NOT_METRICS = {
    "sum", "rate", "irate", "increase", "by", "without", "histogram_quantile", "le", "max",
    "min", "avg", "count", "topk", "on", "ignoring", "group_left", "or", "and", "unless",
    "time", "clamp_min", "offset",
}  # fmt: skip


def _dashboard_metrics() -> set[str]:
    """Metric names in the dashboard's PromQL (label matchers and functions removed)."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", ())
        if "expr" in target
    ]
    names: set[str] = set()
    for expr in exprs:
        bare = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
        bare = re.sub(r"\[[^\]]*\]", "", bare)  # range selectors
        bare = re.sub(r"\b(?:by|without)\s*\([^)]*\)", "", bare)  # grouping labels
        bare = re.sub(r'"[^"]*"', "", bare)
        for word in _PROMQL_WORD.findall(bare):
            if word not in _PROMQL_NOT_METRICS and not word[0].isdigit():
                names.add(word)
    return names


def test_dashboard_parser_finds_metric_names() -> None:
    assert _dashboard_metrics() >= {"grpc_server_handled_total"}
    assert "sum" not in _dashboard_metrics()


async def test_sd_lists_nothing_for_an_instance_without_a_side_port(tmp_path: Path) -> None:
    async with Launcher(tmp_path) as launch:
        registry = await launch.start("registry")
        reg = ("--registry", registry.address)
        await launch.start(
            "services.user", "--data-dir", str(tmp_path / "u"), "--http-listen", "off", *reg
        )
        registry_http = http_address(registry)
        await eventually(
            lambda: scrape(registry_http),
            lambda text: sample(text, "switchboard_registry_instances", service="user") == 1,
            10,
            "the user instance is registered",
        )
        assert await get_json(f"http://{registry_http}/sd/prometheus") == []


async def test_storage_metrics_of_a_service(stack: Stack) -> None:
    config = ClientConfig(registry=RegistryConfig((stack.registry.address,)))
    async with Client(config) as client:
        users = UserClient(await client.connect("user", wait_s=5))
        first = await users.create_user(email="b@example.com", display_name="B", request_id="k1")
        again = await users.create_user(email="b@example.com", display_name="B", request_id="k1")
        assert again.id == first.id
        # The product service follows the user log (its delisting subscription): one Watch.
        await eventually(
            lambda: scrape(http_address(stack.user)),
            lambda text: sample(text, "switchboard_storage_watch_subscribers") == 1,
            10,
            "the product service's subscription is open",
        )
        async for _event in users.watch_users(0):
            text = await scrape(http_address(stack.user))  # while the Watch is open
            break
    assert sample(text, "switchboard_storage_idempotent_replays_total") == 1
    assert (sample(text, "switchboard_storage_commit_seconds_count", database="user") or 0) >= 1
    assert (sample(text, "switchboard_storage_revision", database="user") or 0) >= 1
    assert sample(text, "switchboard_storage_watch_subscribers") == 2  # the product's and ours


async def test_registry_metrics(stack: Stack) -> None:
    registry = http_address(stack.registry)
    # Both agents registered and one lease renewed. The product registers on its own
    # schedule: the user's first renewal can come before it, so wait for both.
    text = await eventually(
        lambda: scrape(registry),
        lambda t: (
            (sample(t, "switchboard_registry_renewals_total") or 0) >= 1
            and sample(t, "switchboard_registry_instances", service="product") == 1
        ),
        TTL_S + 5,
        "a lease renewal and the product's registration",
    )
    assert sample(text, "switchboard_registry_instances", service="user") == 1
    assert sample(text, "switchboard_registry_instances", service="product") == 1
    assert sample(text, "switchboard_registry_leases") == 2
    # Two agents registered (a first attempt that timed out under load registers again).
    registrations = sample(text, "switchboard_registry_registrations_total") or 0
    assert registrations >= 2
    assert (sample(text, "switchboard_registry_watchers") or 0) >= 1  # product follows user
    assert (sample(text, "switchboard_registry_revision") or 0) > 0
    stored = sample(
        text, "switchboard_registry_store_seconds_count", operation="register", backend="memory"
    )
    assert stored == registrations
