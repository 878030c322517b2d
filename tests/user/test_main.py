"""``python -m services.user``'s ``main`` in-process: flags, data dir errors, exit codes, hooks.

The serving itself is faked (``run`` replaced), so these tests stay fast; the
real process is exercised by ``test_process.py``.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from pathlib import Path

import pytest

import services.user.__main__ as user_main
from services.runtime import Lifecycle, ListeningHook, RegistrationAgent, ServerConfig
from services.user import UserStore
from tests.user._main import exit_code


def test_a_data_dir_that_cannot_be_used_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("")
    assert exit_code(user_main.main, ["--listen", "127.0.0.1:0", "--data-dir", str(a_file)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot open {a_file}: ") and err.count("\n") == 1


def test_a_bad_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(user_main.main, ["--listen", "nonsense"]) == 2
    assert "python -m services.user: error: invalid --listen 'nonsense'" in capsys.readouterr().err


def test_help_names_the_database_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(user_main.main, ["--help"]) == 0
    out = capsys.readouterr().out
    assert "directory of user.db" in out and "--registry" in out and "--listen" in out


Served = list[tuple[ServerConfig, Sequence[Lifecycle]]]


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Served:
    """What ``main`` asked ``run`` to serve; ``run`` itself only closes the store."""
    seen: Served = []

    async def fake_run(
        store: UserStore, config: ServerConfig, hooks: Sequence[Lifecycle] = ()
    ) -> None:
        seen.append((config, hooks))
        store.close()

    monkeypatch.delenv("SWITCHBOARD_REGISTRY", raising=False)
    monkeypatch.setattr(user_main, "run", fake_run)
    return seen


def test_main_opens_the_store_and_serves_with_the_registration_agent(
    tmp_path: Path, served: Served
) -> None:
    argv = ["--listen", "127.0.0.1:0", "--data-dir", str(tmp_path), "--registry", "127.0.0.1:9"]
    assert exit_code(user_main.main, argv) == 0
    ((config, hooks),) = served
    assert config.listen == "127.0.0.1:0"
    (agent,) = hooks
    assert isinstance(agent, RegistrationAgent) and agent.service == "user"
    assert (tmp_path / "user.db").exists()


def test_main_without_a_registry_adds_no_agent(tmp_path: Path, served: Served) -> None:
    assert exit_code(user_main.main, ["--listen", "127.0.0.1:0", "--data-dir", str(tmp_path)]) == 0
    assert [hooks for _, hooks in served] == [()]


async def test_the_listening_hook_announces_the_port_and_ends_watches(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = UserStore.open(tmp_path)
    hook = ListeningHook("user", ServerConfig(listen="127.0.0.1:0"), store.end_watches)
    with caplog.at_level(logging.INFO, logger="switchboard.user"):
        await hook.started(41234)
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("switchboard.user", "user listening on 127.0.0.1:41234")
    ]
    await hook.stopping()
    assert store.db.changes.closed
    store.close()


def test_a_database_url_that_is_not_postgresql_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert exit_code(user_main.main, ["--database-url", "mysql://db/x"]) == 2
    assert "--database-url must start with postgresql://" in capsys.readouterr().err


def test_an_unreachable_database_is_one_line_without_the_password_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as sock:  # a port nothing listens on (bound, not listening)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        url = f"postgresql://sb:s3cret@127.0.0.1:{port}/x"
        assert exit_code(user_main.main, ["--listen", "127.0.0.1:0", "--database-url", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot use postgresql://127.0.0.1:{port}/x: ")
    assert err.count("\n") == 1 and "s3cret" not in err


def test_help_names_the_database_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(user_main.main, ["--help"]) == 0
    assert "--database-url" in capsys.readouterr().out
