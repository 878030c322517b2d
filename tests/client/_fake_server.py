"""A fake user service process for the end-to-end client tests.

``python -m tests.client._fake_server --name a --listen 127.0.0.1:0 --registry HOST:PORT``
serves FakeUsers, registers with the registry (when one is given) through the
RegistrationAgent, and prints ``listening on HOST:PORT`` once it serves.
"""

from __future__ import annotations

import argparse
import logging

from harness.fakes import FakeUsers, users_service
from services.runtime import ServerConfig, add_server_arguments, run_main, serve
from services.runtime.agent import RegistrationAgent
from services.runtime.client._discovery import RegistryConfig, add_registry_arguments

log = logging.getLogger("fake_server")


class _Announce:
    def __init__(self, config: ServerConfig) -> None:
        self._config = config

    async def started(self, port: int) -> None:
        print(f"listening on {self._config.listen_on(port)}", flush=True)

    async def stopping(self) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(prog="fake-user-service")
    parser.add_argument("--name", default="users")
    add_server_arguments(parser, default_port=0)
    add_registry_arguments(parser)
    ns = parser.parse_args()
    config = ServerConfig.from_args(ns)
    registry = RegistryConfig.from_args(ns)
    hooks: list[RegistrationAgent | _Announce] = [_Announce(config)]
    if registry.enabled:
        hooks.insert(0, RegistrationAgent.for_server("user", config, registry))
    service = users_service(FakeUsers(ns.name))
    run_main(lambda: serve([service], config, hooks=hooks), log_level=config.log_level)


if __name__ == "__main__":
    main()
