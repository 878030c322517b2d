"""``python -m registry.xds bootstrap --registry HOST:PORT``: print an xDS bootstrap.

Example::

    python -m registry.xds bootstrap --registry 127.0.0.1:50051 > bootstrap.json
    GRPC_XDS_BOOTSTRAP=bootstrap.json my-grpc-client --target xds:///user
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from registry.xds._bootstrap import DEFAULT_NODE_ID, bootstrap_json

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m registry.xds", description="Switchboard's xDS control plane tools."
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    boot = verbs.add_parser("bootstrap", help="print a gRPC xDS bootstrap for a registry")
    boot.add_argument("--registry", required=True, metavar="HOST:PORT")
    boot.add_argument("--node-id", default=DEFAULT_NODE_ID)
    boot.add_argument("--ca-file", type=Path, help="TLS: the CA of the registry's certificate")
    boot.add_argument("--cert-file", type=Path, help="mTLS: this client's certificate")
    boot.add_argument("--key-file", type=Path, help="mTLS: this client's private key")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Print the bootstrap; a bad flag combination exits 2 with one line."""
    parser = _parser()
    ns = parser.parse_args(argv)
    try:
        text = bootstrap_json(
            ns.registry,
            node_id=ns.node_id,
            ca_file=ns.ca_file,
            cert_file=ns.cert_file,
            key_file=ns.key_file,
        )
    except ValueError as err:
        parser.error(str(err))
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
