"""The gRPC xDS bootstrap that points a client at a Switchboard registry.

It lives on the client side of the runtime (not with the registry's xDS server)
because clients and operators write it: ``switchboard xds-bootstrap`` prints one.

A gRPC client (any language) reads it from the file named by
``GRPC_XDS_BOOTSTRAP`` (or the JSON itself in ``GRPC_XDS_BOOTSTRAP_CONFIG``) and
then dials ``xds:///<service>``. With ``ca_file`` the client talks TLS to the
registry (gRFC A65 ``tls`` channel creds; add ``cert_file`` and ``key_file`` for
mTLS); otherwise plaintext.

Example::

    text = bootstrap_json("127.0.0.1:50051")
    # {"xds_servers": [{"server_uri": "127.0.0.1:50051", "channel_creds": [{"type": "insecure"}],
    #   "server_features": ["xds_v3"]}], "node": {"id": "switchboard-client", ...}}
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_NODE_ID",
    "add_bootstrap_arguments",
    "bootstrap",
    "bootstrap_from_args",
    "bootstrap_json",
]

DEFAULT_NODE_ID = "switchboard-client"


def bootstrap(
    registry: str,
    *,
    node_id: str = DEFAULT_NODE_ID,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> dict[str, Any]:
    """The bootstrap as a dict, for a registry at ``registry`` (``host:port``).

    Example: ``bootstrap("registry.internal:50051")["xds_servers"][0]["server_uri"]``.
    """
    if (cert_file is None) != (key_file is None):
        raise ValueError("give both cert_file and key_file (mTLS), or neither")
    if cert_file is not None and ca_file is None:
        raise ValueError("mTLS needs ca_file too: the CA that signed the registry's certificate")
    server = {
        "server_uri": registry,
        "channel_creds": [_channel_creds(ca_file, cert_file, key_file)],
        # xds_v3: speak the v3 API (older clients default to v2).
        "server_features": ["xds_v3"],
    }
    return {
        "xds_servers": [server],
        "node": {"id": node_id, "cluster": "switchboard", "locality": {}},
    }


def bootstrap_json(registry: str, **options: Any) -> str:
    """:func:`bootstrap` as indented JSON text (what goes into the file).

    Example: ``Path("bootstrap.json").write_text(bootstrap_json("127.0.0.1:50051"))``.
    """
    return json.dumps(bootstrap(registry, **options), indent=2) + "\n"


def _channel_creds(
    ca_file: Path | None, cert_file: Path | None, key_file: Path | None
) -> dict[str, Any]:
    if ca_file is None:
        return {"type": "insecure"}
    config = {"ca_certificate_file": str(ca_file.resolve())}
    if cert_file is not None and key_file is not None:
        config["certificate_file"] = str(cert_file.resolve())
        config["private_key_file"] = str(key_file.resolve())
    return {"type": "tls", "config": config}


def add_bootstrap_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of every command that prints a bootstrap (``switchboard xds-bootstrap``)."""
    parser.add_argument("--registry", required=True, metavar="HOST:PORT")
    parser.add_argument("--node-id", default=DEFAULT_NODE_ID)
    parser.add_argument("--ca-file", type=Path, help="TLS: the CA of the registry's certificate")
    parser.add_argument("--cert-file", type=Path, help="mTLS: this client's certificate")
    parser.add_argument("--key-file", type=Path, help="mTLS: this client's private key")


def bootstrap_from_args(ns: argparse.Namespace) -> str:
    """The bootstrap JSON for flags added by :func:`add_bootstrap_arguments`.

    Raises ValueError (one line) for a flag combination that cannot work.
    """
    return bootstrap_json(
        ns.registry,
        node_id=ns.node_id,
        ca_file=ns.ca_file,
        cert_file=ns.cert_file,
        key_file=ns.key_file,
    )
