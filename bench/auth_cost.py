"""What authorization costs per call on the server: ``python -m bench.auth_cost`` (make bench-auth).

Two measurements, both with the verified-token cache warm:

1. In-process, exact: CPU time of the gate's ``admit`` (read metadata, find the
   token in the cache, check the example policy's rules, bind the principal) for
   GetUser, per call, with an HS256, an RS256 and an ES256 token; and, for
   comparison, one cold verification (signature checked, nothing cached).
2. Whole server: a real user-service process pinned to the server core, without
   auth and with ``--auth`` (HS256 and RS256 tokens), driven by a grpc.aio stub
   on the load core; server CPU per GetUser (from /proc ticks), interleaved
   rounds, median of the rounds. Log level WARNING so the access log's cost does
   not drown the difference.

Prints a markdown table; exits 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from bench._config import REPO
from bench._procs import Procs, plan_cpus
from services.runtime.auth import Authorizer, load_policy, mint_token
from switchboard.user.v1 import user_pb2, user_service_pb2, user_service_pb2_grpc

POLICY = REPO / "deploy" / "auth" / "policy.example.toml"
GET_USER = "/switchboard.user.v1.UserService/GetUser"
ISSUER, AUDIENCE = "switchboard-dev", "switchboard"
SCOPES = ["users:read", "users:write"]
IN_PROCESS_CALLS = 100_000
COLD_CALLS = 300
ROUNDS = 7
CALLS_PER_ROUND = 4000
CONCURRENCY = 16
TICKS_PER_S = 100  # os.sysconf("SC_CLK_TCK") on Linux


class _Keys:
    """A development secret, an RSA and an EC key, the JWKS of their public halves."""

    def __init__(self, directory: Path) -> None:
        self.secret = b"b" * 64
        self.secret_file = directory / "secret"
        self.secret_file.write_bytes(self.secret)
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        keys = [
            json.loads(RSAAlgorithm.to_jwk(self.rsa.public_key())) | {"kid": "r", "alg": "RS256"},
            json.loads(ECAlgorithm.to_jwk(self.ec.public_key())) | {"kid": "e", "alg": "ES256"},
        ]
        self.jwks_file = directory / "jwks.json"
        self.jwks_file.write_text(json.dumps({"keys": keys}))

    def token(self, alg: str, subject: str = "bench") -> str:
        if alg == "HS256":
            return mint_token(
                self.secret, subject=subject, scopes=SCOPES, issuer=ISSUER, audience=AUDIENCE
            )
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "exp": now + 3600,
                  "nbf": now, "scope": " ".join(SCOPES)}  # fmt: skip
        key: Any = self.rsa if alg == "RS256" else self.ec
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": alg[0].lower()})


class _Context:
    """Just what the gate reads of a grpc.aio ServicerContext."""

    def __init__(self, token: str) -> None:
        self._metadata = (("authorization", f"Bearer {token}"), ("x-request-id", "r" * 32))

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}


def _cpu_us(run: Callable[[], object], calls: int) -> float:
    start = time.process_time_ns()
    for _ in range(calls):
        run()
    return (time.process_time_ns() - start) / calls / 1000


def in_process(keys: _Keys) -> list[tuple[str, float]]:
    """Gate CPU per call (warm cache) per algorithm, and one cold verification each."""
    rows = []
    for alg in ("HS256", "RS256", "ES256"):
        rows += _gate_costs(keys, alg)
    return rows


def _gate_costs(keys: _Keys, alg: str) -> list[tuple[str, float]]:
    policy = load_policy(POLICY, secret_file=keys.secret_file, jwks_file=keys.jwks_file)
    gate = Authorizer(policy, mtls=False).gate_for(GET_USER)
    assert gate is not None
    context: Any = _Context(keys.token(alg))
    gate.admit(context)  # warm the cache
    warm = _cpu_us(lambda: gate.admit(context), IN_PROCESS_CALLS)
    tokens = [keys.token(alg, subject=f"s{n}") for n in range(COLD_CALLS)]
    contexts: Any = iter([_Context(token) for token in tokens])
    cold = _cpu_us(lambda: gate.admit(next(contexts)), COLD_CALLS)
    return [
        (f"gate, {alg}, cache warm", warm),
        (f"gate, {alg}, first sight (signature checked)", cold),
    ]


async def _drive(address: str, token: str | None, user_id: str, calls: int) -> None:
    md = (("authorization", f"Bearer {token}"),) if token else ()
    async with grpc.aio.insecure_channel(address) as channel:
        stub = user_service_pb2_grpc.UserServiceStub(channel)
        request = user_service_pb2.GetUserRequest(id=user_id)

        async def worker(n: int) -> None:
            for _ in range(n):
                await stub.GetUser(request, timeout=5.0, metadata=md)

        await asyncio.gather(*(worker(calls // CONCURRENCY) for _ in range(CONCURRENCY)))


async def _create(address: str, token: str | None) -> str:
    md = (("authorization", f"Bearer {token}"),) if token else ()
    async with grpc.aio.insecure_channel(address) as channel:
        stub = user_service_pb2_grpc.UserServiceStub(channel)
        user = user_pb2.User(email="bench@example.com", display_name="Bench")
        answer = await stub.CreateUser(
            user_service_pb2.CreateUserRequest(user=user), timeout=5.0, metadata=md
        )
        return str(answer.user.id)


async def whole_server(keys: _Keys, work: Path) -> list[tuple[str, float]]:
    """Server CPU per GetUser: no auth, and auth with HS256 / RS256 tokens (median of rounds)."""
    cpus = plan_cpus()
    if cpus.load is not None:
        os.sched_setaffinity(0, {cpus.load})
    base = [sys.executable, "-m", "services.user", "--listen", "127.0.0.1:0",
            "--log-level", "WARNING"]  # fmt: skip
    auth = ["--auth", str(POLICY), "--auth-secret-file", str(keys.secret_file),
            "--auth-jwks-file", str(keys.jwks_file)]  # fmt: skip
    samples: dict[str, list[float]] = {"no auth": [], "auth, HS256": [], "auth, RS256": []}
    (work / "logs").mkdir(exist_ok=True)
    async with Procs(work / "logs", cpus) as procs:
        plain = await procs.start("user-plain", [*base, "--data-dir", str(work / "a")])
        secured = await procs.start("user-auth", [*base, *auth, "--data-dir", str(work / "b")])
        tokens = {"HS256": keys.token("HS256"), "RS256": keys.token("RS256")}
        plain_id = await _create(plain.address, None)
        secured_id = await _create(secured.address, tokens["HS256"])
        runs = [("no auth", plain, None, plain_id),
                ("auth, HS256", secured, tokens["HS256"], secured_id),
                ("auth, RS256", secured, tokens["RS256"], secured_id)]  # fmt: skip
        for _name, proc, token, user_id in runs:  # warm-up
            await _drive(proc.address, token, user_id, CALLS_PER_ROUND // 4)
        for _ in range(ROUNDS):
            for name, proc, token, user_id in runs:
                before = proc.cpu_ticks()
                await _drive(proc.address, token, user_id, CALLS_PER_ROUND)
                used_s = (proc.cpu_ticks() - before) / TICKS_PER_S
                samples[name].append(used_s / CALLS_PER_ROUND * 1e6)
    return [
        (f"server CPU per GetUser, {k} (rounds {min(v):.0f}-{max(v):.0f})", statistics.median(v))
        for k, v in samples.items()
    ]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        keys = _Keys(work)
        rows = in_process(keys)
        rows += asyncio.run(whole_server(keys, work))
    base = next((v for k, v in rows if "no auth" in k), 0.0)
    print("| measurement | µs per call |\n|---|---|")
    for name, value in rows:
        extra = ""
        if name.startswith("server CPU") and "no auth" not in name:
            extra = f" ({value - base:+.1f} vs no auth)"
        print(f"| {name} | {value:.1f}{extra} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
