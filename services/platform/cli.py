"""``switchboard``: one command for operators, with a verb per task.

::

    switchboard run                  start the platform file's processes (what `make run` runs)
    switchboard services             registered services and their instance counts
    switchboard instances [SERVICE]  instances with address, version, lease age and health
    switchboard watch SERVICE        one line per registry change of SERVICE, until Ctrl-C
    switchboard new-service NAME     scaffold a service: contracts, code, tests, platform entry
    switchboard tls ca|cert          a development CA, and certificates it signs for services
    switchboard token                a development token (auth on: `make run AUTH=1`)
    switchboard xds-bootstrap        the bootstrap file a gRPC client needs to dial xds:///NAME

Each verb shows only its own flags (``switchboard instances -h``). The
registry comes from ``--registry``, else ``SWITCHBOARD_REGISTRY``, else the
platform file's registry process. Errors are one line naming the cause and
the fix. Exit status: 0 ok, 1 registry unreachable (or a crash loop under
``run``), 2 bad usage or configuration.

Example::

    $ switchboard services
    SERVICE  INSTANCES
    product  1
    user     1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

from services.platform._ops import render_instances, render_services, watch_lines
from services.platform._platform_file import (
    PlatformFileError,
    find_platform_file,
    load_platform,
)
from services.platform._scaffold import ScaffoldError, new_service
from services.platform._supervisor import SupervisorError, run_platform
from services.platform._tls import TlsError, make_ca, make_cert
from services.runtime import (
    Client,
    ClientConfig,
    ConfigError,
    RegistryClient,
    RegistryConfig,
    SwitchboardError,
)
from services.runtime.auth.__main__ import add_token_arguments, token_command
from services.runtime.client.xds_bootstrap import add_bootstrap_arguments, bootstrap_from_args

__all__ = ["build_parser", "main"]

PROG = "switchboard"
EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad flags or configuration: one line on stderr, exit 2."""


def build_parser() -> argparse.ArgumentParser:
    """The ``switchboard`` parser: one sub-parser per verb, each with only its own flags."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Run and inspect a Switchboard platform; scaffold services."
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    run = verbs.add_parser("run", help="start every process of the platform file (make run)")
    _add_file(run)
    services = verbs.add_parser("services", help="registered services and instance counts")
    _add_registry(services)
    instances = verbs.add_parser("instances", help="instances with address, lease age, health")
    _add_registry(instances)
    instances.add_argument("service", nargs="*", metavar="SERVICE", help="only these services")
    instances.add_argument(
        "--health-timeout-s", type=float, default=1.0, help="health check deadline (default 1)"
    )
    watch = verbs.add_parser("watch", help="print each registry change of a service, live")
    _add_registry(watch)
    watch.add_argument("service", metavar="SERVICE", help="the service to follow")
    new = verbs.add_parser("new-service", help="scaffold a service in the house style")
    new.add_argument("name", metavar="NAME", help="service name, e.g. orders")
    new.add_argument("--port", type=int, help="default port (default: the next free one)")
    new.add_argument("--skip-protos", action="store_true", help="do not run `make protos`")
    _add_file(new)
    _add_tls(verbs)
    token = verbs.add_parser("token", help="mint a development token (HS256)")
    add_token_arguments(token)
    xds = verbs.add_parser("xds-bootstrap", help="print a gRPC xDS bootstrap for a registry")
    add_bootstrap_arguments(xds)
    return parser


def _add_tls(verbs: Any) -> None:
    tls = verbs.add_parser("tls", help="make a development CA and service certificates")
    kinds = tls.add_subparsers(dest="tls_verb", required=True, metavar="ca|cert")
    for kind, what in (("ca", "write a new CA"), ("cert", "write a certificate the CA signs")):
        sub = kinds.add_parser(kind, help=what)
        sub.add_argument("--dir", type=Path, default=Path("certs"), help="where (default certs)")
        if kind == "cert":
            sub.add_argument("--name", required=True, help="the service it names (CN), e.g. user")
            sub.add_argument(
                "--san",
                action="append",
                default=[],
                help="a host name or IP clients dial (repeatable), e.g. --san 127.0.0.1",
            )


def _add_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--file", type=Path, help="the platform file (default: switchboard.toml here or above)"
    )


def _add_registry(parser: argparse.ArgumentParser) -> None:
    """The flags that say where the registry is and how to reach it (reads need no token)."""
    group = parser.add_argument_group("registry (each flag defaults to its SWITCHBOARD_* variable)")
    group.add_argument(
        "--registry",
        metavar="HOST:PORT",
        help="registry address (default: $SWITCHBOARD_REGISTRY, else the platform file's)",
    )
    group.add_argument("--registry-tls", action="store_true", help="dial the registry with TLS")
    for flag, what in _TLS_FILES.items():
        group.add_argument(f"--registry-{flag}", type=Path, metavar="PEM", help=what)
    group.add_argument("--registry-server-name", help="TLS name to expect from the registry")


_TLS_FILES = {
    "ca": "CA bundle that signed the registry's certificate (implies TLS)",
    "cert": "client certificate, for a registry that asks for one (mTLS)",
    "key": "the client certificate's private key",
}


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Parse ``argv``, run the verb, return the exit status (the console script's entry)."""
    environ = os.environ if env is None else env
    ns = build_parser().parse_args(argv)  # exits 2 with usage on bad flags
    verbs: dict[str, Callable[[argparse.Namespace, Mapping[str, str]], int]] = {
        "run": _run,
        "services": _services,
        "instances": _instances,
        "watch": _watch,
        "new-service": _new_service,
        "tls": _tls,
        "token": _token,
        "xds-bootstrap": _xds_bootstrap,
    }
    try:
        return verbs[ns.verb](ns, environ)
    except (
        UsageError,
        PlatformFileError,
        SupervisorError,
        ScaffoldError,
        TlsError,
        ConfigError,
        ValueError,
    ) as exc:
        _fail(ns.verb, str(exc))
        return EXIT_USAGE


def _fail(verb: str, message: str) -> None:
    print(f"{PROG} {verb}: {message}", file=sys.stderr, flush=True)


def _platform_file(ns: argparse.Namespace) -> Path:
    path: Path | None = ns.file
    return path if path is not None else find_platform_file(Path.cwd())


def _run(ns: argparse.Namespace, env: Mapping[str, str]) -> int:
    return run_platform(load_platform(_platform_file(ns), env))


def _new_service(ns: argparse.Namespace, env: Mapping[str, str]) -> int:
    path = _platform_file(ns)
    created = new_service(path.parent, ns.name, port=ns.port, run_protos=not ns.skip_protos)
    print(created.summary(), flush=True)
    return EXIT_OK


def _tls(ns: argparse.Namespace, env: Mapping[str, str]) -> int:
    if ns.tls_verb == "ca":
        print(make_ca(ns.dir).summary(), flush=True)
    else:
        print(make_cert(ns.dir, ns.name, ns.san).summary(), flush=True)
    return EXIT_OK


def _token(ns: argparse.Namespace, env: Mapping[str, str]) -> int:
    print(token_command(ns), flush=True)
    return EXIT_OK


def _xds_bootstrap(ns: argparse.Namespace, env: Mapping[str, str]) -> int:
    sys.stdout.write(bootstrap_from_args(ns))
    return EXIT_OK


def _registry_config(ns: argparse.Namespace, env: Mapping[str, str]) -> RegistryConfig:
    config = _with_tls_flags(RegistryConfig.from_env(env), ns)
    if ns.registry:
        return dataclasses.replace(config, addresses=(ns.registry,))
    if config.enabled:
        return config
    try:
        platform = load_platform(find_platform_file(Path.cwd()), env)
    except PlatformFileError:
        raise UsageError(
            "no registry: pass --registry HOST:PORT or set SWITCHBOARD_REGISTRY"
        ) from None
    return dataclasses.replace(config, addresses=(platform.address(platform.registry),))


def _with_tls_flags(config: RegistryConfig, ns: argparse.Namespace) -> RegistryConfig:
    given = {
        "tls": ns.registry_tls or None,
        "ca_file": ns.registry_ca,
        "cert_file": ns.registry_cert,
        "key_file": ns.registry_key,
        "server_name": ns.registry_server_name,
    }
    return dataclasses.replace(config, **{k: v for k, v in given.items() if v is not None})


def _with_registry(
    ns: argparse.Namespace,
    env: Mapping[str, str],
    work: Callable[[RegistryClient], Coroutine[Any, Any, None]],
) -> int:
    config = _registry_config(ns, env)

    async def session() -> int:
        async with Client(ClientConfig(registry=config)) as client:
            try:
                await work(RegistryClient(await client.registry()))
            except SwitchboardError as err:
                where = ", ".join(config.addresses)
                _fail(
                    ns.verb,
                    f"registry {where} did not answer ({err.code.name}: {err}): start it with "
                    "`switchboard run` (or `make run`), or pass --registry HOST:PORT",
                )
                return EXIT_UNREACHABLE
        return EXIT_OK

    return asyncio.run(session())


def _services(ns: argparse.Namespace, env: Mapping[str, str]) -> int:
    async def work(registry: RegistryClient) -> None:
        print(await render_services(registry), flush=True)

    return _with_registry(ns, env, work)


def _instances(ns: argparse.Namespace, env: Mapping[str, str]) -> int:
    if ns.health_timeout_s <= 0:
        raise UsageError(f"--health-timeout-s {ns.health_timeout_s} must be above 0, e.g. 1")

    credentials = _registry_config(ns, env).credentials()  # instances serve TLS like it

    async def work(registry: RegistryClient) -> None:
        table = await render_instances(registry, ns.service, ns.health_timeout_s, credentials)
        print(table, flush=True)

    return _with_registry(ns, env, work)


def _watch(ns: argparse.Namespace, env: Mapping[str, str]) -> int:
    async def work(registry: RegistryClient) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        follow = asyncio.create_task(_print_lines(registry, ns.service))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({follow, stopped}, return_when=asyncio.FIRST_COMPLETED)
        for task in (follow, stopped):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follow  # re-raises the registry's error, if that is what ended it

    return _with_registry(ns, env, work)


async def _print_lines(registry: RegistryClient, service: str) -> None:
    async for line in watch_lines(registry, service):
        print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
