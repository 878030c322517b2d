"""``python -m registry.xds bootstrap --registry HOST:PORT``: print an xDS bootstrap.

Example::

    python -m registry.xds bootstrap --registry 127.0.0.1:50051 > bootstrap.json
    GRPC_XDS_BOOTSTRAP=bootstrap.json my-grpc-client --target xds:///user
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from services.runtime.client.xds_bootstrap import add_bootstrap_arguments, bootstrap_from_args

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m registry.xds", description="Switchboard's xDS control plane tools."
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    boot = verbs.add_parser("bootstrap", help="print a gRPC xDS bootstrap for a registry")
    add_bootstrap_arguments(boot)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Print the bootstrap; a bad flag combination exits 2 with one line."""
    parser = _parser()
    ns = parser.parse_args(argv)
    try:
        text = bootstrap_from_args(ns)
    except ValueError as err:
        parser.error(str(err))
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
