"""A member's login while unsigned maximum-size bodies flood the marketplace callbacks.

    python -m benchmarks.flood [--database-url URL] [--rounds 3] [--logins 100] [--flooders 4]

identity and the simulator run as processes (tests/helpers/stack.py) on a temporary SQLite file (or
the given database). Each round first measures `--logins` logins one at a time with the machine
otherwise idle, then the same number while `--flooders` processes post unsigned bodies of the
maximum accepted size (IDENTITY_MAX_BODY_BYTES) to the kit callback as fast as they can, each on
one keep-alive connection, alternating two shapes that cost the most to refuse: one flat object
of ~100,000 top-level keys, and a few keys holding a long nested list (parsed, canonicalised and
hashed before the signature can be refused). The flooders are separate processes, so they do
not share this process's interpreter with the measured logins.

Target: the login p99 under flood stays within 2x of the idle p99. Prints a table,
then the figures as one JSON line (the last line of stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2 as httpx

from benchmarks.authsync import seller_key_file, sqlite_database
from benchmarks.login import batch, mint, sign_in_at_simulator
from identity.migrate import upgrade
from tests.helpers.simulator_world import world
from tests.helpers.stack import Stack, running_stack

MAX_BODY = 1024 * 1024


def _object_of(members: list[bytes], limit: int, head: bytes = b"") -> bytes:
    """`{head members…}` with as many of the repeating members as fit under `limit`."""
    parts, size = [], len(head) + 2
    for i in range(limit):
        member = members[i % len(members)].replace(b"#", str(i).encode())
        if size + len(member) + 1 > limit:
            break
        parts.append(member)
        size += len(member) + 1
    return b"{" + head + b",".join(parts) + b"}"


def flood_bodies(limit: int = MAX_BODY) -> list[bytes]:
    """Two unsigned bodies just under the limit: ~100,000 top-level keys, and a few keys
    holding one long list of users."""
    flat = _object_of([b'"k#":1'], limit)
    user = '{"userName":"u#","name":"张三","orgCode":"10000","role":"user","enable":"true"}'
    users = _object_of([user.encode()], limit - 150)[1:-1]
    nested = (
        b'{"tenantId":"t","appId":"a","flag":1,"testFlag":0,"instanceId":"i",'
        b'"timeStamp":"20240101000000000","userList":[' + users + b"]}"
    )
    return [flat, nested]


def flooder(host: str, port: int, stop: Any, counter: Any) -> None:
    """Post unsigned bodies on one keep-alive connection until told to stop."""
    bodies = flood_bodies()
    sock = socket.create_connection((host, port))
    sent = 0
    while not stop.is_set():
        body = bodies[sent % len(bodies)]
        head = (
            "POST /koogallery/produceAPI/v2/authSync HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nx-sign: {'ab' * 32}\r\n"
            f"x-timestamp: {int(time.time() * 1000)}\r\nx-nonce: {uuid.uuid4().hex}\r\n\r\n"
        )
        sock.sendall(head.encode() + body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                sock = socket.create_connection((host, port))
                break
            answer += chunk
        sent += 1
        with counter.get_lock():
            counter.value += 1
    sock.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def logins(
    sim: httpx.AsyncClient, client: httpx.AsyncClient, stack: Stack, n: int
) -> list[float]:
    codes = await mint(sim, stack, n)
    callback = f"{stack.identity}/sso/callback/{stack.scenario.app_id}"
    urls = [f"{callback}?code={c['code']}&tenant={c['tenant']}" for c in codes]
    return await batch(client, urls, 1)


async def bench(url: str, key_file: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = {"IDENTITY_LOG_LEVEL": "WARNING"}
    async with running_stack(url, key_file, world(), identity_env=env) as stack:
        await stack.provision("acme")
        target = urlsplit(stack.identity)
        idle: list[float] = []
        flooded: list[float] = []
        refused, flood_seconds = 0, 0.0
        ctx = multiprocessing.get_context("spawn")
        async with httpx.AsyncClient(timeout=60) as sim, httpx.AsyncClient(timeout=60) as client:
            await sign_in_at_simulator(sim, stack)
            await logins(sim, client, stack, 10)  # warm up
            for _ in range(args.rounds):
                idle += await logins(sim, client, stack, args.logins)
                stop, counter = ctx.Event(), ctx.Value("i", 0)
                procs = [
                    ctx.Process(target=flooder, args=(target.hostname, target.port, stop, counter))
                    for _ in range(args.flooders)
                ]
                for p in procs:
                    p.start()
                await asyncio.sleep(2)  # let the flood reach full speed
                start, before = time.perf_counter(), counter.value
                flooded += await logins(sim, client, stack, args.logins)
                flood_seconds += time.perf_counter() - start
                refused += counter.value - before
                stop.set()
                for p in procs:
                    p.join(timeout=30)
                    if p.is_alive():
                        p.kill()
    idle_p99, flood_p99 = percentile(idle, 0.99), percentile(flooded, 0.99)
    return {
        "logins_per_phase": len(idle),
        "flooders": args.flooders,
        "body_bytes": MAX_BODY,
        "forged_calls_refused_per_s": round(refused / flood_seconds, 1),
        "idle_p50_ms": round(statistics.median(idle) * 1000, 1),
        "idle_p99_ms": round(idle_p99 * 1000, 1),
        "flood_p50_ms": round(statistics.median(flooded) * 1000, 1),
        "flood_p99_ms": round(flood_p99 * 1000, 1),
        "p99_ratio": round(flood_p99 / idle_p99, 2),
    }


Bench = Callable[[str, Path, argparse.Namespace], Awaitable[dict[str, Any]]]


def run_migrated(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    """`bench(url, seller key file, args)` on `--database-url`, migrated first, or on a
    temporary SQLite file."""
    with tempfile.TemporaryDirectory(prefix="identity-bench-") as tmp:
        key_file = seller_key_file(Path(tmp))

        def run(url: str) -> dict[str, Any]:
            upgrade(url)
            return asyncio.run(bench(url, key_file, args))

        if args.database_url:
            return run(args.database_url)
        with sqlite_database() as url:
            return run(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--database-url", help="the database to use (default: temporary SQLite)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--logins", type=int, default=100, help="logins per phase per round")
    parser.add_argument("--flooders", type=int, default=4)
    args = parser.parse_args(argv)
    result = run_migrated(bench, args)
    head = ("logins", "refused/s", "idle p50", "idle p99", "flood p50", "flood p99", "p99 ratio")
    row = (
        result["logins_per_phase"],
        result["forged_calls_refused_per_s"],
        result["idle_p50_ms"],
        result["idle_p99_ms"],
        result["flood_p50_ms"],
        result["flood_p99_ms"],
        f"{result['p99_ratio']} (<=2)",
    )
    print("  ".join(f"{h:>11}" for h in head))
    print("  ".join(f"{v!s:>11}" for v in row))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
