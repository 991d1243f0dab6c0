"""Logins/s through identity's callback against a bare endpoint making the same two calls.

    python -m benchmarks.login [--database-url URL] [--rounds 10] [--logins 40] [--concurrency 8]

Three processes besides this one: identity (tests/helpers/servers.py, on a temporary SQLite file
and then on a scratch PostgreSQL database, unless `--database-url` names one), the simulator's
auth centre (`identity simulate serve`), and the baseline (`benchmarks/bare_login.py`): a FastAPI
endpoint that exchanges the code and reads userinfo with one pooled httpx2 client, and nothing
else. identity's callback does the same two calls plus everything a login needs: the tenant,
instance and credential lookups, decrypting the client secret, the member and authorisation checks
under locks, recording the Huawei user id, and inserting the encrypted session.

Codes are minted at the simulator (the member is already signed in there, so each authorize is
one redirect) before each measured batch and are not timed. Rounds alternate: `--logins` bare
callbacks, then `--logins` identity callbacks, `--concurrency` at a time, so both sides see the
same machine load. Logins/s = logins / summed wall time of the batches.

Prints a table, then the figures as one JSON line (the last line of stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx

from benchmarks.authsync import DEFAULT_POSTGRES, seller_key_file, sqlite_database
from identity.migrate import upgrade
from tests.helpers.servers import ServiceProcesses, free_port, scratch_postgres
from tests.helpers.simulator_world import ACME, login_form, world
from tests.helpers.stack import Stack, running_stack


async def mint(sim: httpx.AsyncClient, stack: Stack, n: int) -> list[dict[str, str]]:
    """n fresh codes for alice (signed in at the simulator already)."""
    params = {"ind": "UNOP", "appId": stack.scenario.app_id}
    codes = []
    for _ in range(n):
        response = await sim.get(stack.sim + "/unified-login/portal-login", params=params)
        assert response.status_code == 302, response.text
        query = httpx.URL(response.headers["location"]).params
        codes.append({"code": query["code"], "tenant": query["tenant"]})
    return codes


async def sign_in_at_simulator(sim: httpx.AsyncClient, stack: Stack) -> None:
    page = await sim.get(
        stack.sim + "/unified-login/portal-login",
        params={"ind": "UNOP", "appId": stack.scenario.app_id},
    )
    form = login_form(page.text)
    assert form.action is not None
    fields = {**form.inputs, "username": "alice@acme", "password": "alice-pw"}
    answer = await sim.post(httpx.URL(stack.sim).join(form.action), data=fields)
    assert answer.status_code == 302, answer.text


async def batch(client: httpx.AsyncClient, urls: list[str], concurrency: int) -> list[float]:
    """Run the callbacks `concurrency` at a time; every one must land (303)."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(url: str) -> None:
        async with gate:
            start = time.perf_counter()
            response = await client.get(url)
            latencies.append(time.perf_counter() - start)
            assert response.status_code == 303, (url, response.status_code, response.text[:300])

    await asyncio.gather(*(one(u) for u in urls))
    return latencies


async def bench(url: str, key_file: Path, args: argparse.Namespace) -> dict[str, Any]:
    identity_env = {"IDENTITY_SESSION_COOKIE_SECURE": "true", "IDENTITY_LOG_LEVEL": "WARNING"}
    async with running_stack(url, key_file, world(), identity_env=identity_env) as stack:
        await stack.provision("acme")
        bare_port = free_port()
        env = dict(os.environ) | {
            "BARE_DOMAIN": stack.sim,
            "BARE_CLIENT_ID": ACME["clientId"],
            "BARE_CLIENT_SECRET": ACME["clientSecret"],
            "BARE_REDIRECT_URI": f"{stack.identity}/sso/callback/{stack.scenario.app_id}",
        }
        argv = [sys.executable, "-m", "benchmarks.bare_login", str(bare_port)]
        with ServiceProcesses(1, env, ports=[bare_port], argv=lambda port: argv) as baseline:
            bare = f"http://127.0.0.1:{bare_port}"
            pids = {
                "identity": stack.processes[0].processes[0].pid,
                "bare": baseline.processes[0].pid,
            }
            return await measure(stack, bare, pids, args)


async def measure(
    stack: Stack, bare: str, pids: dict[str, int], args: argparse.Namespace
) -> dict[str, Any]:
    timings: dict[str, list[float]] = {"identity": [], "bare": []}
    cpu: dict[str, float] = {"identity": 0.0, "bare": 0.0}
    latencies: dict[str, list[float]] = {"identity": [], "bare": []}
    limits = httpx.Limits(max_connections=args.concurrency * 2)
    async with (
        httpx.AsyncClient(timeout=30) as sim,
        httpx.AsyncClient(timeout=30, limits=limits) as client,
    ):
        await sign_in_at_simulator(sim, stack)
        callback = f"{stack.identity}/sso/callback/{stack.scenario.app_id}"
        for round_ in range(args.rounds + 1):  # round 0 warms both up, unmeasured
            for side in ("bare", "identity"):
                codes = await mint(sim, stack, args.logins)
                if side == "bare":
                    urls = [f"{bare}/callback?code={c['code']}" for c in codes]
                else:
                    urls = [f"{callback}?code={c['code']}&tenant={c['tenant']}" for c in codes]
                start, cpu_start = time.perf_counter(), cpu_seconds(pids[side])
                lat = await batch(client, urls, args.concurrency)
                if round_:
                    timings[side].append(time.perf_counter() - start)
                    latencies[side] += lat
                    cpu[side] += cpu_seconds(pids[side]) - cpu_start
    n = args.rounds * args.logins
    rate = {side: n / sum(t) for side, t in timings.items()}
    return {
        "logins": n,
        "concurrency": args.concurrency,
        "identity_logins_per_s": round(rate["identity"], 1),
        "bare_logins_per_s": round(rate["bare"], 1),
        "ratio": round(rate["identity"] / rate["bare"], 2),
        "identity_median_ms": round(statistics.median(latencies["identity"]) * 1000, 1),
        "bare_median_ms": round(statistics.median(latencies["bare"]) * 1000, 1),
        "identity_cpu_ms_per_login": round(cpu["identity"] / n * 1000, 2),
        "bare_cpu_ms_per_login": round(cpu["bare"] / n * 1000, 2),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to show where the time goes."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def print_table(results: list[dict[str, Any]]) -> None:
    head = (
        "database",
        "logins",
        "identity/s",
        "bare/s",
        "ratio (>=0.5)",
        "id ms p50",
        "bare ms p50",
        "id cpu ms",
        "bare cpu ms",
    )
    print("  ".join(f"{h:>13}" for h in head))
    for r in results:
        row = (
            r["database"],
            r["logins"],
            r["identity_logins_per_s"],
            r["bare_logins_per_s"],
            r["ratio"],
            r["identity_median_ms"],
            r["bare_median_ms"],
            r["identity_cpu_ms_per_login"],
            r["bare_cpu_ms_per_login"],
        )
        print("  ".join(f"{v!s:>13}" for v in row))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--database-url", help="one database to use (default: SQLite and PG)")
    parser.add_argument("--postgres-server", default=DEFAULT_POSTGRES)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--logins", type=int, default=40, help="logins per side per round")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)

    results = []
    with tempfile.TemporaryDirectory(prefix="identity-bench-") as tmp:
        key_file = seller_key_file(Path(tmp))

        def run(label: str, url: str) -> None:
            upgrade(url)
            results.append({"database": label, **asyncio.run(bench(url, key_file, args))})

        if args.database_url:
            run("given", args.database_url)
        else:
            with sqlite_database() as url:
                run("sqlite", url)
            with scratch_postgres(args.postgres_server, "identity_bench") as url:
                run("postgresql", url)
    print_table(results)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
