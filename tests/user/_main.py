"""Calling a service's ``main`` in-process (also used by tests/product).

``main`` ends the process (``sys.exit``) and sets up the root logger for a
process; :func:`exit_code` catches the first and undoes the second.

Example::

    assert exit_code(user_main.main, ["--listen", "nonsense"]) == 2
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import pytest

__all__ = ["exit_code"]


def exit_code(main: Callable[[Sequence[str]], object], argv: Sequence[str]) -> int | str | None:
    """The status ``main(argv)`` exits with; the root logger is put back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        with pytest.raises(SystemExit) as exit_:
            main(argv)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return exit_.value.code
