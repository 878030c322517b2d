"""``python -m services.platform`` is ``switchboard`` (for when the console script is not on PATH).

Example::

    python -m services.platform services --registry 127.0.0.1:50051
"""

from __future__ import annotations

import sys

from services.platform.cli import main

if __name__ == "__main__":
    sys.exit(main())
