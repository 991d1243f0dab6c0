"""Token introspection requests/s next to a constant JSON endpoint in the same server process.

    python -m benchmarks.introspect [--rounds 10] [--requests 400] [--concurrency 8]

identity and the simulator run as processes (tests/helpers/stack.py) on a temporary SQLite file. A
confidential client signs a member in through the real code flow, then each round posts
`--requests` introspection calls for the member's access token (client_secret_basic, a JWT
signature check and the grant's liveness query each time), `--concurrency` at a time, and as
many POSTs to `/_bench/constant`, a route mounted in the same identity process that answers a
constant JSON (tests/helpers/servers.py, `BENCH_CONSTANT_ROUTE`), alternating so both see the same
load. Target: introspection at least 0.3x the constant endpoint. Prints a table, then
one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx

from benchmarks.authsync import seller_key_file, sqlite_database
from identity.db import Database
from identity.migrate import upgrade
from tests.helpers.oidc_app import register, tokens_for
from tests.helpers.simulator_world import world
from tests.helpers.stack import running_stack


async def hammer(client: httpx.AsyncClient, send: Any, n: int, concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            response = await send(client)
            assert response.status_code == 200, response.text

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return time.perf_counter() - start


async def bench(url: str, key_file: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = {"IDENTITY_LOG_LEVEL": "WARNING", "BENCH_CONSTANT_ROUTE": "1"}
    async with running_stack(url, key_file, world(), identity_env=env) as stack:
        await stack.provision("acme")
        db = Database(url)
        browser = stack.browser()
        limits = httpx.Limits(max_connections=args.concurrency * 2)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            app = await register(stack, db, http)
            issued = await tokens_for(app, browser)
            token, endpoint = issued["access_token"], app.config["introspection_endpoint"]
            auth = (app.client_id, app.secret)

            async def introspect(c: httpx.AsyncClient) -> httpx.Response:
                response = await c.post(endpoint, data={"token": token}, auth=auth)
                assert response.json()["active"] is True
                return response

            async def constant(c: httpx.AsyncClient) -> httpx.Response:
                return await c.post(stack.identity + "/_bench/constant", data={"token": token})

            times: dict[str, list[float]] = {"introspect": [], "constant": []}
            for round_ in range(args.rounds + 1):  # round 0 warms up, unmeasured
                for name, send in (("constant", constant), ("introspect", introspect)):
                    took = await hammer(http, send, args.requests, args.concurrency)
                    if round_:
                        times[name].append(took)
        await browser.close()
        await db.dispose()
    rate = {k: args.requests / statistics.median(v) for k, v in times.items()}
    return {
        "requests_per_round": args.requests,
        "concurrency": args.concurrency,
        "introspect_per_s": round(rate["introspect"], 1),
        "constant_per_s": round(rate["constant"], 1),
        "ratio": round(rate["introspect"] / rate["constant"], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="identity-bench-") as tmp:
        key_file = seller_key_file(Path(tmp))
        with sqlite_database() as url:
            upgrade(url)
            result = asyncio.run(bench(url, key_file, args))
    print(f"{'introspect/s':>14}{'constant/s':>14}{'ratio (>=0.3)':>16}")
    print(f"{result['introspect_per_s']:>14}{result['constant_per_s']:>14}{result['ratio']:>16}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
