"""A plain grpcio client (no Switchboard code): GetUser through ``xds:///user`` in a loop.

Run as its own process with ``GRPC_XDS_BOOTSTRAP`` set, so gRPC core's xDS
resolver finds the registry. Each call carries ``x-request-id: xds-<n>`` (the
servers' access logs show which instance answered) and is written to ``--out``
as ``<request id> <status code> <start, unix seconds>``. Each call is made once,
no retry, so every failure shows. It stops at EOF on stdin, after ``--max-calls``
or after ``--max-s``.

Example::

    GRPC_XDS_BOOTSTRAP=bootstrap.json python tests/xds/grpcio_client.py \\
        --target xds:///user --user-id u-1 --out calls.txt < /dev/null
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import grpc

from switchboard.user.v1 import user_service_pb2 as us
from switchboard.user.v1 import user_service_pb2_grpc as us_grpc


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--user-id", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--interval-s", type=float, default=0.01)
    parser.add_argument("--timeout-s", type=float, default=2.0)
    parser.add_argument("--max-calls", type=int, default=20_000)
    parser.add_argument("--max-s", type=float, default=90.0)
    return parser.parse_args()


def _stop_at_eof(stop: threading.Event) -> None:
    sys.stdin.read()
    stop.set()


def main() -> None:
    ns = _args()
    stop = threading.Event()
    threading.Thread(target=_stop_at_eof, args=(stop,), daemon=True).start()
    deadline = time.monotonic() + ns.max_s
    with grpc.insecure_channel(ns.target) as channel, open(ns.out, "a") as out:
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = us_grpc.UserServiceStub(channel)
        request = us.GetUserRequest(id=ns.user_id)
        for n in range(ns.max_calls):
            if stop.is_set() or time.monotonic() > deadline:
                break
            started = time.time()
            try:
                stub.GetUser(
                    request, timeout=ns.timeout_s, metadata=(("x-request-id", f"xds-{n}"),)
                )
                code = "OK"
            except grpc.RpcError as err:
                code = err.code().name if isinstance(err, grpc.Call) else "UNKNOWN"
            out.write(f"xds-{n} {code} {started:.6f}\n")
            out.flush()
            stop.wait(ns.interval_s)


if __name__ == "__main__":
    main()
