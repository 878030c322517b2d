"""What operators run: the ``switchboard`` command, the supervisor and the platform file.

- :mod:`services.platform.cli` — ``switchboard run | services | instances | watch | new-service``.
- :func:`load_platform` — reads and checks ``switchboard.toml`` (the processes to start).
- :class:`Supervisor` — starts them in order, restarts a crashed one, stops them in order.
- :func:`new_service` — scaffolds a service from ``services/platform/templates``.

Depends on the runtime's public surface and the generated contracts only; it names
no service: everything per service comes from the platform file.

Example::

    platform = load_platform(Path("switchboard.toml"), os.environ)
    sys.exit(run_platform(platform))
"""

from __future__ import annotations

from services.platform._ops import InstanceRow, check_health, collect, format_table
from services.platform._platform_file import (
    PLATFORM_FILE,
    Platform,
    PlatformFileError,
    Process,
    find_platform_file,
    load_platform,
    port_variable,
)
from services.platform._ports import BusyPort, busy_ports, port_is_free
from services.platform._scaffold import Names, NewService, ScaffoldError, new_service
from services.platform._supervisor import (
    CRASH_LIMIT,
    CRASH_WINDOW_S,
    Supervisor,
    SupervisorError,
    check_ports_free,
    restart_delay,
    run_platform,
)

__all__ = [
    "CRASH_LIMIT",
    "CRASH_WINDOW_S",
    "PLATFORM_FILE",
    "BusyPort",
    "InstanceRow",
    "Names",
    "NewService",
    "Platform",
    "PlatformFileError",
    "Process",
    "ScaffoldError",
    "Supervisor",
    "SupervisorError",
    "busy_ports",
    "check_health",
    "check_ports_free",
    "collect",
    "find_platform_file",
    "format_table",
    "load_platform",
    "new_service",
    "port_is_free",
    "port_variable",
    "restart_delay",
    "run_platform",
]
