"""The platform file (``switchboard.toml``): which processes ``switchboard run`` starts.

Read with :mod:`tomllib` and checked key by key: every mistake is one
:class:`PlatformFileError` line naming the file, the line, the key and the fix.
Environment variables override what operators change per run: ``HOST``,
``DATA_DIR``, ``LOG_LEVEL`` and ``<NAME>_PORT`` (``make run USER_PORT=6000``).

Example::

    platform = load_platform(Path("switchboard.toml"), os.environ)
    [p.name for p in platform.start_order()]    # the registry first, then the services
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "PLATFORM_FILE",
    "Platform",
    "PlatformFileError",
    "Process",
    "find_platform_file",
    "load_platform",
    "port_variable",
]

PLATFORM_FILE = "switchboard.toml"
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_PROCESS_KEYS = {"module", "command", "service", "ready", "port", "after", "args"}
_READY = ("health", "tcp")
_PLATFORM_KEYS = {"registry", "host", "data_dir", "log_level", "auth_policy", "auth"}


class PlatformFileError(Exception):
    """The platform file (or a variable overriding it) is wrong; the message says how to fix it."""


@dataclass(frozen=True)
class Process:
    """One child: ``python -m <module> <args>`` (or ``command``) listening on ``port``.

    ``service`` is the name it registers under (default: the process name, so
    ``user-1`` and ``user-2`` can both be ``user``); ``ready`` says how the
    supervisor knows it is up: ``health`` (grpc.health.v1 SERVING, then
    registered unless it is a registry) or ``tcp`` (the port accepts, for
    programs such as etcd or PostgreSQL).
    """

    name: str
    module: str
    port: int
    after: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    service: str = ""
    ready: str = "health"

    @property
    def registers_as(self) -> str:
        return self.service or self.name

    def argv(self, python: str, host: str, data_dir: str) -> list[str]:
        """The command line that starts it, ``{host}``, ``{port}``, ``{data_dir}`` filled in."""
        head = list(self.command) if self.command else [python, "-m", self.module]
        values = {"{host}": host, "{port}": str(self.port), "{data_dir}": data_dir}
        return [_fill(part, values) for part in (*head, *self.args)]


def _fill(text: str, values: Mapping[str, str]) -> str:
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


@dataclass(frozen=True)
class Platform:
    """The validated platform file with the environment's overrides applied."""

    processes: tuple[Process, ...]
    registry: str
    host: str = "127.0.0.1"
    data_dir: str = "./var"
    log_level: str = "INFO"
    path: Path = Path(PLATFORM_FILE)
    auth_policy: Path | None = None  # the policy `AUTH=1` (development auth) starts with
    auth: bool = False  # start with development auth on (AUTH=1 or [platform] auth = true)
    tls: bool = False  # serve mutual TLS with a development PKI under data_dir (TLS=1)
    registry_replicas: tuple[str, ...] = ()  # more registry processes (`registry` is a list)

    def process(self, name: str) -> Process:
        """The process called ``name`` (KeyError if none)."""
        return next(p for p in self.processes if p.name == name)

    def levels(self) -> list[list[Process]]:
        """Processes grouped by depth: level 0 needs nothing, level n needs level < n.

        Start level by level; stop in the reverse order.
        """
        depth: dict[str, int] = {}
        for process in self._topological():
            depth[process.name] = 1 + max((depth[a] for a in process.after), default=-1)
        grouped: list[list[Process]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for process in self.processes:
            grouped[depth[process.name]].append(process)
        return grouped

    def start_order(self) -> list[Process]:
        """Every process, each after those it names in ``after``."""
        return [p for level in self.levels() for p in level]

    def address(self, name: str) -> str:
        """``host:port`` of the process ``name``."""
        return f"{self.host}:{self.process(name).port}"

    @property
    def registries(self) -> tuple[str, ...]:
        """The registry processes: ``registry`` and any replicas (``registry_replicas``)."""
        return (self.registry, *self.registry_replicas)

    def registry_addresses(self) -> str:
        """What services are told to register with: every replica, comma-separated."""
        return ",".join(self.address(name) for name in self.registries)

    def _topological(self) -> list[Process]:
        done: dict[str, Process] = {}
        pending = list(self.processes)
        while pending:
            ready = [p for p in pending if all(a in done for a in p.after)]
            if not ready:  # _check_graph refuses cycles before a Platform exists
                raise PlatformFileError(f"cycle among {', '.join(p.name for p in pending)}")
            for process in ready:
                done[process.name] = process
                pending.remove(process)
        return list(done.values())


def port_variable(name: str) -> str:
    """The variable overriding a port: ``port_variable("web-ui")`` is ``WEB_UI_PORT``."""
    return f"{name.upper().replace('-', '_')}_PORT"


def find_platform_file(start: Path) -> Path:
    """``switchboard.toml`` in ``start`` or the nearest parent that has one."""
    for folder in (start.resolve(), *start.resolve().parents):
        if (folder / PLATFORM_FILE).is_file():
            return folder / PLATFORM_FILE
    raise PlatformFileError(
        f"no {PLATFORM_FILE} in {start} or above: run switchboard from the repository, "
        "or pass --file PATH"
    )


def load_platform(path: Path, env: Mapping[str, str]) -> Platform:
    """Read, check and apply ``env``'s overrides; :class:`PlatformFileError` if anything is off."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise PlatformFileError(f"{path}: cannot read it ({exc.strerror})") from None
    where = _Locator(path, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlatformFileError(f"{path}: not valid TOML ({exc})") from None
    return _platform(data, where, env)


class _Locator:
    """Names ``file:line`` for a key, so an error points where to edit."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def at(self, table: str, key: str | None = None) -> str:
        header = self._find(rf"\[\s*{re.escape(table)}\s*\]", 0)
        line = header
        if key is not None and header is not None:
            line = self._find(rf"{re.escape(key)}\s*=", header + 1, stop_at_table=True) or header
        return f"{self.path}:{line + 1 if line is not None else 1}"

    def _find(self, pattern: str, start: int, stop_at_table: bool = False) -> int | None:
        for number in range(start, len(self.lines)):
            stripped = self.lines[number].strip()
            if stop_at_table and stripped.startswith("["):
                return None
            if re.match(pattern, stripped):
                return number
        return None


def _platform(data: dict[str, Any], where: _Locator, env: Mapping[str, str]) -> Platform:
    unknown = set(data) - {"platform", "process"}
    if unknown:
        key = sorted(unknown)[0]
        raise PlatformFileError(
            f"{where.path}: unknown table or key {key!r}: only [platform] and [process.NAME] exist"
        )
    settings = _table(data, "platform", where.path)
    _no_unknown_keys(settings, _PLATFORM_KEYS, "platform", where)
    processes = _processes(_table(data, "process", where.path), where, env)
    registry, *replicas = _registries(settings, where, {p.name for p in processes})
    return Platform(
        processes=processes,
        registry=registry,
        registry_replicas=tuple(replicas),
        host=env.get("HOST") or _text(settings, "host", "platform", where, "127.0.0.1"),
        data_dir=env.get("DATA_DIR") or _text(settings, "data_dir", "platform", where, "./var"),
        log_level=(
            env.get("LOG_LEVEL") or _text(settings, "log_level", "platform", where, "INFO")
        ).upper(),
        path=where.path,
        auth_policy=_auth_policy(settings, where),
        auth=_auth_on(settings, where, env),
        tls=_switch(env, "TLS"),
    )


def _registries(settings: dict[str, Any], where: _Locator, names: set[str]) -> list[str]:
    """``[platform] registry``: one process name, or a list of replicas (the first leads)."""
    value = settings.get("registry", "registry")
    chosen = [value] if isinstance(value, str) else value
    if not isinstance(chosen, list) or not chosen or not all(isinstance(n, str) for n in chosen):
        raise PlatformFileError(
            f"{where.at('platform', 'registry')}: [platform] registry must be a process name "
            'or a list of them, e.g. registry = "registry"'
        )
    for name in chosen:
        if name not in names:
            raise PlatformFileError(
                f"{where.at('platform', 'registry')}: [platform] registry = {name!r} names no "
                f"process: add [process.{name}] or name an existing process"
            )
    return list(chosen)


def _switch(env: Mapping[str, str], name: str) -> bool:
    """A yes/no variable such as ``TLS=1``; anything else is a one-line error."""
    raw = env.get(name, "").strip().lower()
    if raw in {"", "0", "false", "no", "off"}:
        return False
    if raw in {"1", "true", "yes", "on"}:
        return True
    raise PlatformFileError(f"{name}={env[name]!r}: use {name}=1 (on) or {name}=0 (off)")


def _auth_policy(settings: dict[str, Any], where: _Locator) -> Path | None:
    """``[platform] auth_policy``, relative to the platform file's folder."""
    if "auth_policy" not in settings:
        return None
    return where.path.parent / _text(settings, "auth_policy", "platform", where, "")


def _auth_on(settings: dict[str, Any], where: _Locator, env: Mapping[str, str]) -> bool:
    """AUTH=1 (or ``[platform] auth = true``) turns development auth on; it needs a policy."""
    on = _switch(env, "AUTH") or settings.get("auth") is True
    if on and "auth_policy" not in settings:
        raise PlatformFileError(
            f'{where.at("platform")}: AUTH=1 needs [platform] auth_policy = "FILE" '
            "(e.g. deploy/auth/policy.example.toml)"
        )
    return on


def _table(data: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise PlatformFileError(f"{path}: {name!r} must be a table: write [{name}] or [{name}.X]")
    return value


def _processes(
    tables: dict[str, Any], where: _Locator, env: Mapping[str, str]
) -> tuple[Process, ...]:
    if not tables:
        raise PlatformFileError(
            f"{where.path}: no processes: add a [process.NAME] table with module and port"
        )
    processes = tuple(_process(name, table, where, env) for name, table in tables.items())
    _check_graph(processes, where)
    _check_ports_distinct(processes, where)
    return processes


def _process(name: str, table: Any, where: _Locator, env: Mapping[str, str]) -> Process:
    section = f"process.{name}"
    if not _NAME.fullmatch(name):
        raise PlatformFileError(
            f"{where.at(section)}: process name {name!r} must be lower-case letters, digits, "
            "'-' or '_', starting with a letter"
        )
    if not isinstance(table, dict):
        raise PlatformFileError(f"{where.path}: process.{name} must be a table: [process.{name}]")
    _no_unknown_keys(table, _PROCESS_KEYS, section, where)
    command = _strings(table, "command", section, where)
    if command and "module" in table:
        raise PlatformFileError(
            f"{where.at(section, 'command')}: [{section}] has both module and command: "
            "keep module for a Python service, command for another program"
        )
    module = "" if command else _module(table, section, where)
    ready = _text(table, "ready", section, where, "tcp" if command else "health")
    if ready not in _READY:
        raise PlatformFileError(
            f"{where.at(section, 'ready')}: [{section}] ready = {ready!r}: use "
            '"health" (grpc.health.v1, then registered) or "tcp" (the port accepts)'
        )
    return Process(
        name=name,
        module=module,
        port=_port(table, name, where, env),
        after=_strings(table, "after", section, where),
        args=_strings(table, "args", section, where),
        command=command,
        service=_text(table, "service", section, where, name),
        ready=ready,
    )


def _module(table: dict[str, Any], section: str, where: _Locator) -> str:
    module = _text(table, "module", section, where)
    if not _MODULE.fullmatch(module):
        raise PlatformFileError(
            f"{where.at(section, 'module')}: [{section}] module = {module!r} is not a Python "
            'module name: write it as for `python -m`, e.g. "services.NAME"'
        )
    return module


def _no_unknown_keys(table: dict[str, Any], known: set[str], section: str, where: _Locator) -> None:
    for key in table:
        if key not in known:
            raise PlatformFileError(
                f"{where.at(section, key)}: unknown key {key!r} in [{section}]: "
                f"the keys are {', '.join(sorted(known))}"
            )


def _text(
    table: dict[str, Any], key: str, section: str, where: _Locator, default: str | None = None
) -> str:
    value = table.get(key, default)
    if value is None:
        raise PlatformFileError(f'{where.at(section)}: [{section}] needs {key} = "..."')
    if not isinstance(value, str) or not value:
        raise PlatformFileError(
            f"{where.at(section, key)}: [{section}] {key} must be a non-empty string, "
            f'e.g. {key} = "{default or "..."}"'
        )
    return value


def _strings(table: dict[str, Any], key: str, section: str, where: _Locator) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PlatformFileError(
            f"{where.at(section, key)}: [{section}] {key} must be a list of strings, "
            f'e.g. {key} = ["registry"]'
        )
    return tuple(value)


def _port(table: dict[str, Any], name: str, where: _Locator, env: Mapping[str, str]) -> int:
    variable = port_variable(name)
    raw = env.get(variable)
    if raw:
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise PlatformFileError(
                f"{variable}={raw!r} is not a port number: use 1-65535, e.g. {variable}=6000"
            )
        return int(raw)
    section = f"process.{name}"
    value = table.get("port")
    if value is None:
        raise PlatformFileError(f"{where.at(section)}: [{section}] needs port = 1-65535")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise PlatformFileError(
            f"{where.at(section, 'port')}: [{section}] port = {value!r} is not a port number: "
            "use an integer 1-65535, e.g. port = 50060"
        )
    return value


def _check_graph(processes: Sequence[Process], where: _Locator) -> None:
    names = {p.name for p in processes}
    for process in processes:
        for dependency in process.after:
            if dependency not in names or dependency == process.name:
                raise PlatformFileError(
                    f"{where.at(f'process.{process.name}', 'after')}: [process.{process.name}] "
                    f"after names {dependency!r}, which is {_why_bad(dependency, process.name)}: "
                    f"use one of {', '.join(sorted(names - {process.name}))}"
                )
    _check_acyclic(processes, where)


def _why_bad(dependency: str, name: str) -> str:
    return "the process itself" if dependency == name else "no process"


def _check_acyclic(processes: Sequence[Process], where: _Locator) -> None:
    done: set[str] = set()
    pending = list(processes)
    while pending:
        ready = [p for p in pending if set(p.after) <= done]
        if not ready:
            first = pending[0]
            raise PlatformFileError(
                f"{where.at(f'process.{first.name}', 'after')}: the after lists of "
                f"{', '.join(p.name for p in pending)} form a cycle: remove one dependency"
            )
        done.update(p.name for p in ready)
        pending = [p for p in pending if p not in ready]


def _check_ports_distinct(processes: Sequence[Process], where: _Locator) -> None:
    seen: dict[int, str] = {}
    for process in processes:
        other = seen.setdefault(process.port, process.name)
        if other != process.name:
            raise PlatformFileError(
                f"{where.at(f'process.{process.name}', 'port')}: {process.name} and {other} "
                f"both use port {process.port}: give each process its own port "
                f"(or set {port_variable(process.name)})"
            )
