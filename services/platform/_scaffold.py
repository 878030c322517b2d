"""``switchboard new-service NAME``: a working service in the house style, from templates.

Writes the contracts (``protos/switchboard/NAME/v1/``: a resource file and a
service file with Create/Get/List/Update/Delete + Watch), the service package
(``services/NAME/`` on :func:`services.runtime.run_service` and the shared
storage), its tests (``tests/NAME/``) and its ``[process.NAME]`` entry in the
platform file; then runs ``make protos`` so the generated Python exists. The
templates are ``services/platform/templates/**.tmpl``; ``{{key}}`` placeholders
are filled from the name (``orders`` -> resource ``order``, ``Order``, ...).

Nothing is written unless every check passes first, and nothing that exists
is overwritten.

Example::

    created = new_service(Path("."), "billing")
    print(created.summary())
"""

from __future__ import annotations

import keyword
import re
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from services.platform._platform_file import PLATFORM_FILE, load_platform

__all__ = ["NewService", "ScaffoldError", "Names", "new_service"]

_NAME = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
_MAX_NAME = 30
_RESERVED = {"platform", "runtime", "registry", "switchboard", "services", "tests", "google"}
_PROTOS_TIMEOUT_S = 300.0


class ScaffoldError(Exception):
    """The service cannot be created as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Names:
    """Every spelling of a service's names that the templates use.

    Example: ``Names.of("invoices").values()["Res"] == "Invoice"``.
    """

    svc: str
    res: str
    ress: str

    @classmethod
    def of(cls, name: str) -> Names:
        """``invoices`` -> resource ``invoice``; ``inventory`` -> resource ``inventory``."""
        if name.endswith("s") and not name.endswith("ss") and len(name) > 2:
            return cls(name, name[:-1], name)
        return cls(name, name, f"{name}s")

    def values(self) -> dict[str, str]:
        """Placeholder -> text, e.g. ``{"svc": "invoices", "Svc": "Invoices", ...}``."""
        return {
            "svc": self.svc,
            "Svc": _pascal(self.svc),
            "svc_flat": self.svc.replace("_", ""),
            "res": self.res,
            "Res": _pascal(self.res),
            "RES": self.res.upper(),
            "RESS": self.ress.upper(),
            "ress": self.ress,
            "Ress": _pascal(self.ress),
            "res_words": self.res.replace("_", " "),
            "a_res": f"{_article(self.res)} {self.res.replace('_', ' ')}",
            "A_res": f"{_article(self.res).capitalize()} {self.res.replace('_', ' ')}",
            "ress_words": self.ress.replace("_", " "),
            "OBJC": f"S{self.svc[0].upper()}X",
        }


@dataclass
class NewService:
    """What :func:`new_service` wrote, for the summary it prints."""

    names: Names
    port: int
    root: Path
    files: list[Path] = field(default_factory=list)
    protos_ran: bool = False

    def summary(self) -> str:
        """The lines ``switchboard new-service`` prints: what was made and what to run next."""
        v = self.names.values()
        full = f"switchboard.{v['svc']}.v1.{v['Svc']}Service"
        lines = [f"created service {v['svc']!r} ({full}, port {self.port}):"]
        lines += [f"  {path.relative_to(self.root)}" for path in self.files]
        lines.append(f"  {PLATFORM_FILE} (+ [process.{v['svc']}])")
        if self.protos_ran:
            lines.append(f"generated generated/python/switchboard/{v['svc']}/v1 (make protos)")
        body = f'{{"{v["res"]}": {{"display_name": "first"}}}}'
        steps = [
            (f".venv/bin/python -m pytest tests/{v['svc']}", "its own tests"),
            ("make run", "starts it with the rest"),
        ]
        width = max(len(command) for command, _ in steps) + 2
        lines.append("next:")
        lines += [f"  {command.ljust(width)}# {why}" for command, why in steps]
        lines += [
            f"  grpcurl -plaintext -d '{body}' \\",
            f"    127.0.0.1:{self.port} {full}/Create{v['Res']}",
        ]
        return "\n".join(lines)


def new_service(
    root: Path, name: str, *, port: int | None = None, run_protos: bool = True
) -> NewService:
    """Scaffold service ``name`` in the repository at ``root``; see the module docstring."""
    names = _checked_names(root, name)
    chosen = _port(root, port)
    created = NewService(names, chosen, root)
    values = {**names.values(), "port": str(chosen)}
    plan = _plan(root, names)
    for target, template in plan:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_render(template.read_text(), values))
        created.files.append(target)
    _append_process(root, names, chosen)
    _format([p for p, _ in plan if p.suffix == ".py"])
    if run_protos:
        _make_protos(root)
        created.protos_ran = True
    return created


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def _pascal(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def _checked_names(root: Path, name: str) -> Names:
    if not _NAME.fullmatch(name) or len(name) > _MAX_NAME:
        raise ScaffoldError(
            f"{name!r} is not a service name: use 2-{_MAX_NAME} lower-case letters, digits "
            "and single '_', starting with a letter, e.g. orders"
        )
    names = Names.of(name)
    taken = {name, names.res} & (_RESERVED | set(keyword.kwlist))
    if len(name) < 2 or taken:
        raise ScaffoldError(
            f"{name!r} cannot be a service name (too short or reserved): choose another, "
            "e.g. orders"
        )
    platform = load_platform(root / PLATFORM_FILE, {})
    for existing in (root / "services" / name, root / "protos/switchboard" / name):
        if existing.exists():
            raise ScaffoldError(
                f"service {name!r} already exists ({existing.relative_to(root)}): "
                "choose another name, or delete it first"
            )
    if name in {p.name for p in platform.processes}:
        raise ScaffoldError(
            f"{PLATFORM_FILE} already has [process.{name}]: choose another name, "
            "or remove that entry first"
        )
    if (root / "tests" / name).exists():
        raise ScaffoldError(
            f"tests/{name} already exists: choose another name, or move those tests first"
        )
    return names


def _port(root: Path, port: int | None) -> int:
    used = {p.port for p in load_platform(root / PLATFORM_FILE, {}).processes}
    if port is None:
        return max(used) + 1
    if not 0 < port < 65536 or port in used:
        raise ScaffoldError(
            f"--port {port} is {'taken in ' + PLATFORM_FILE if port in used else 'not 1-65535'}"
            f": choose another, e.g. --port {max(used) + 1}"
        )
    return port


def _templates() -> Traversable:
    return resources.files("services.platform") / "templates"


def _plan(root: Path, names: Names) -> list[tuple[Path, Traversable]]:
    """(target path, template) for every file to write."""
    templates = _templates()
    v = names.values()
    protos = root / "protos/switchboard" / v["svc"] / "v1"
    plan = [
        (protos / f"{v['res']}.proto", templates / "protos/resource.proto.tmpl"),
        (protos / f"{v['svc']}_service.proto", templates / "protos/service.proto.tmpl"),
    ]
    for folder, target in (("service", root / "services" / v["svc"]), ("tests", root / "tests")):
        if folder == "tests":
            target = target / v["svc"]
        for template in sorted(templates.joinpath(folder).iterdir(), key=lambda t: t.name):
            if template.name.endswith(".tmpl"):
                plan.append((target / template.name.removesuffix(".tmpl"), template))
    return plan


def _render(text: str, values: dict[str, str]) -> str:
    def fill(match: re.Match[str]) -> str:
        return values[match[1]]

    return re.sub(r"\{\{(\w+)\}\}", fill, text)


def _append_process(root: Path, names: Names, port: int) -> None:
    path = root / PLATFORM_FILE
    text = path.read_text()
    entry = (
        f"\n[process.{names.svc}]\n"
        f'module = "services.{names.svc}"\n'
        f"port = {port}\n"
        f'after = ["{load_platform(path, {}).registry}"]\n'
    )
    path.write_text(text.rstrip("\n") + "\n" + entry)


def _format(paths: list[Path]) -> None:
    """ruff-format the new Python (line lengths depend on the name); skipped without ruff."""
    for command in (["format", "--quiet"], ["check", "--fix", "--quiet", "--select", "I"]):
        subprocess.run(
            [sys.executable, "-m", "ruff", *command, *map(str, paths)],
            capture_output=True,
            check=False,
            timeout=60,
        )


def _make_protos(root: Path) -> None:
    try:
        result = subprocess.run(
            ["make", "protos"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=_PROTOS_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ScaffoldError(f"`make protos` did not run ({exc}): run it by hand") from None
    if result.returncode != 0:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ScaffoldError(f"`make protos` failed ({last[0]}): fix it and run `make protos`")
