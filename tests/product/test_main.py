"""``python -m services.product``'s ``main`` in-process: what it hands to ``run``.

The product service also calls the user service, so ``main`` builds the
client runtime's config: ``SWITCHBOARD_*`` variables (static addresses, the
client timeout) plus this process's own registry flags. Serving is faked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

import services.product.__main__ as product_main
from services.product import ProductStore
from services.runtime import ClientConfig, Lifecycle, RegistrationAgent, ServerConfig
from tests.user._main import exit_code


def test_main_hands_run_the_client_config_with_the_registry_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[ClientConfig, Sequence[Lifecycle]]] = []

    async def fake_run(
        store: ProductStore,
        config: ServerConfig,
        client: ClientConfig,
        hooks: Sequence[Lifecycle] = (),
    ) -> None:
        seen.append((client, hooks))
        store.close()

    monkeypatch.setattr(product_main, "run", fake_run)
    monkeypatch.setenv("SWITCHBOARD_REGISTRY", "10.0.0.1:1")  # the flag wins
    monkeypatch.setenv("SWITCHBOARD_ADDRESSES_USER", "127.0.0.1:7001")
    monkeypatch.setenv("SWITCHBOARD_CLIENT_TIMEOUT_S", "2.5")
    argv = ["--listen", "127.0.0.1:0", "--data-dir", str(tmp_path), "--registry", "127.0.0.1:9"]
    assert exit_code(product_main.main, argv) == 0
    ((client, hooks),) = seen
    assert client.registry.addresses == ("127.0.0.1:9",)
    assert dict(client.static) == {"user": ("127.0.0.1:7001",)}
    assert client.default_timeout_s == 2.5
    (agent,) = hooks
    assert isinstance(agent, RegistrationAgent) and agent.service == "product"
    assert (tmp_path / "product.db").exists()
