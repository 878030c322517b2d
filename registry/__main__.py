"""``python -m registry``: run the registry service (see ``registry._app``)."""

from __future__ import annotations

from registry._app import main

if __name__ == "__main__":
    main()
