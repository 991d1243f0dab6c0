"""Two replicas and two workers on PostgreSQL behind a proxy, under mixed traffic for a while.

    LOAD_SECONDS=600 python -m benchmarks.load     (or `make load`)

On a scratch PostgreSQL database (`identity_load_<random>` on postgresql://postgres@127.0.0.1:5432,
migrated with `identity migrate`, dropped afterwards) it starts two `identity serve` processes,
two `identity worker` processes, `benchmarks/proxy.py` (a round-robin TCP proxy: the public URL
of both replicas), the simulator's auth centre (`identity simulate serve`) and, in this process,
an app's back-channel logout receiver (identity.client's router). One tenant is provisioned
through signed calls with `LOAD_MEMBERS` members who sign in (default 300) and a pool of 500
who are only synced; an OIDC client is registered with `identity clients add` (back-channel URI:
the receiver); the tenant's admin signs in. Then, for `LOAD_SECONDS` (default 600), every kind
of benchmarks/load_workload.py runs at once, all through the proxy.

After the run the workers get up to 90 s to deliver what the run left in the outbox; every
session the run ended (logout or de-provisioning) must have reached the receiver as a
back-channel logout naming its sid. Memory is the summed VmRSS of the four identity processes,
sampled after a warm-up (a tenth of the run, at most 60 s) and at the end. Each replica's
`/metrics` tells how many requests it answered, to show the proxy split the traffic.

Prints a table per kind, then the figures as one JSON object (the last line of stdout). Exits 1
when a target is missed (any error, RSS at the end above 1.25x the start, a logout not
delivered), after printing everything.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import uvicorn
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from benchmarks.authsync import DEFAULT_POSTGRES, seller_key_file
from benchmarks.load_workload import TENANT, Stat, Workload
from identity.client import TokenValidator, backchannel_logout_router
from identity.db import Database
from identity.simulator.scenario import Scenario, dump_scenario
from identity.simulator.sender import Keys, provision
from tests.helpers.admin_api import signed_in
from tests.helpers.marketplace_client import BASIC_KEY, KIT_KEY, SECRET_KEY
from tests.helpers.oidc_app import REDIRECT, App
from tests.helpers.servers import (
    METRICS_AUTH,
    ServiceProcesses,
    free_port,
    scratch_postgres,
    service_env,
)
from tests.helpers.simulator_world import ACME, APP_ID
from tests.helpers.stack import Stack

RSS_LIMIT = 1.25
DRAIN_SECONDS = 90
IDENTITY = [sys.executable, "-m", "identity.cli"]


def scenario(logins: int) -> Scenario:
    """ACME's tenant with `logins` members m0001… who sign in and 500 s0001… who are synced."""
    members = [{**ACME["members"][0]}]  # alice, the admin
    for prefix, count in (("m", logins), ("s", 500)):
        members += [
            {
                "userName": f"{prefix}{i:04d}",
                "name": f"Load {prefix}{i:04d}",
                "orgCode": "acme-rd",
                "password": f"{prefix}{i:04d}-pw",
            }
            for i in range(1, count + 1)
        ]
    tenant = {**ACME, "members": members}
    return Scenario.model_validate({"appId": APP_ID, "tenants": [tenant]})


def rss_mb(pids: list[int]) -> float:
    """The summed VmRSS of the processes, in MiB (Linux /proc)."""
    total_kb = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
    return round(total_kb / 1024, 1)


@contextmanager
def workers(env: dict[str, str], count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = [
        subprocess.Popen([*IDENTITY, "worker"], env=env, stdout=subprocess.DEVNULL)
        for _ in range(count)
    ]
    try:
        yield procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=15)


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([*IDENTITY, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"identity {' '.join(args)}: {done.stderr}")
    return done.stdout


@dataclass
class Running:
    """The started processes as the traffic needs them."""

    env: dict[str, str]
    public: str  # the proxy: the replicas' public URL
    sim: str
    receiver_port: int
    replicas: list[str]  # each replica's own URL, behind the proxy
    pids: list[int]  # the identity processes: replicas and workers


def environment(url: str, public: str, key_file: Path) -> dict[str, str]:
    env = service_env(
        url, secret_key=SECRET_KEY, basic_key=BASIC_KEY, kit_key=KIT_KEY, base_url=public
    )
    return env | {
        "IDENTITY_SESSION_COOKIE_SECURE": "false",
        "IDENTITY_MARKETPLACE_PRIVATE_KEY_FILE": str(key_file),
    }


@contextmanager
def processes(url: str, key_file: Path, world_file: Path) -> Iterator[Running]:
    """Migrate, then start the replicas, the workers, the proxy and the simulator."""
    proxy_port, sim_port = free_port(), free_port()
    public = f"http://127.0.0.1:{proxy_port}"
    env = environment(url, public, key_file)
    cli(env, "migrate")
    replicas = ServiceProcesses(
        2, env, argv=lambda port: [*IDENTITY, "serve", "--port", str(port), "--workers", "1"]
    )
    with replicas, workers(env, 2) as jobs:
        proxy = ServiceProcesses(
            1,
            env,
            ports=[proxy_port],
            argv=lambda port: (
                [sys.executable, "-m", "benchmarks.proxy", str(port)]
                + [str(p) for p in replicas.ports]
            ),
        )
        sim = ServiceProcesses(
            1,
            env,
            ports=[sim_port],
            argv=lambda port: (
                [*IDENTITY, "simulate", "serve", "--scenario", str(world_file)]
                + ["--identity", public, "--no-provision", "--port", str(port)]
            ),
        )
        with proxy, sim:
            pids = [p.pid for p in replicas.processes] + [p.pid for p in jobs]
            yield Running(env, public, sim.urls[0], free_port(), replicas.urls, pids)


async def receiver(validator: TokenValidator, port: int, sids: set[str]) -> uvicorn.Server:
    """The app's back-channel logout URI, served in this process; records each sid."""
    app = FastAPI()
    app.include_router(backchannel_logout_router(validator, lambda sid, sub: sids.add(str(sid))))
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", lifespan="off"))
    asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    return server


async def pending(url: str) -> int:
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            query = "SELECT count(*) FROM logout_deliveries WHERE delivered_at IS NULL"
            return int(await conn.scalar(text(query)) or 0)
    finally:
        await db.dispose()


async def run(url: str, seconds: float, logins: int) -> dict[str, Any]:
    world = scenario(logins)
    with tempfile.TemporaryDirectory(prefix="identity-load-") as tmp:
        key_file = seller_key_file(Path(tmp))
        world_file = Path(tmp) / "scenario.json"
        world_file.write_text(dump_scenario(world))
        with processes(url, key_file, world_file) as running:
            return await drive(url, running, world, key_file, seconds)


async def register(running: Running, http: httpx.AsyncClient) -> App:
    """The app: a confidential client added with `identity clients add`, its back-channel
    logout URI the receiver."""
    back = f"http://127.0.0.1:{running.receiver_port}/backchannel-logout"
    added = cli(
        running.env,
        *("clients", "add", "--app", APP_ID, "--name", "Load app", "--json"),
        *("--redirect-uri", REDIRECT, "--backchannel-logout-uri", back),
    )
    shown = json.loads(added)
    config = (await http.get("/.well-known/openid-configuration")).json()
    return App(shown["client_id"], shown["client_secret"], config, http)


async def drive(
    url: str, running: Running, world: Scenario, key_file: Path, seconds: float
) -> dict[str, Any]:
    """Provision, register the client, sign the admin in, run the workload, drain, measure."""
    keys = Keys.from_private_key_pem(BASIC_KEY, KIT_KEY, key_file.read_bytes())
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=running.public, timeout=30, limits=limits) as http:
        stack = Stack(running.public, running.sim, world, http, keys)
        await provision(stack.sender, stack.tenant(TENANT))
        app = await register(running, http)
        validator = TokenValidator(running.public, app.client_id, http=http)
        received: set[str] = set()
        server = await receiver(validator, running.receiver_port, received)
        admin = await signed_in(stack, stack.browser(), "alice@acme", "alice-pw")
        members = [m for m in world.tenant(TENANT).members if m.user_name != "alice"]
        work = Workload(
            stack,
            app,
            validator,
            admin,
            logins=[m.user_name for m in members if m.user_name.startswith("m")],
            sync_pool=[m for m in members if m.user_name.startswith("s")],
            deadline=time.monotonic() + seconds,
        )
        started = time.monotonic()
        traffic = asyncio.create_task(work.run())
        await asyncio.sleep(min(60.0, seconds / 10))
        rss_start = rss_mb(running.pids)
        await traffic
        took, rss_end = time.monotonic() - started, rss_mb(running.pids)
        left = await drain(url, work.ended_sids, received)
        split = await requests_answered(running.replicas)
        server.should_exit = True
        await admin.close()
    result = report(work, took, rss_start, rss_end, left, work.ended_sids - received)
    return result | {"requests_per_replica": split}


async def requests_answered(replicas: list[str]) -> list[int]:
    """Each replica's count of answered HTTP requests, from its `/metrics`: the proxy's split."""
    counts = []
    async with httpx.AsyncClient(timeout=10, headers=METRICS_AUTH) as client:
        for url in replicas:
            text = (await client.get(url + "/metrics")).text
            samples = [
                sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "identity_http_requests_total"
            ]
            counts.append(int(sum(samples)))
    return counts


async def drain(url: str, ended: set[str], received: set[str]) -> int:
    """Until every ended session's logout arrived and the outbox is empty (at most 90 s)."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while (left := await pending(url)) or not ended <= received:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    return left


def report(
    work: Workload, took: float, rss_start: float, rss_end: float, left: int, missing: set[str]
) -> dict[str, Any]:
    kinds = {kind: figures(stat) for kind, stat in sorted(work.stats.items())}
    return {
        "seconds": round(took, 1),
        "errors": sum(k["errors"] for k in kinds.values()),
        "kinds": kinds,
        "rss_start_mb": rss_start,
        "rss_end_mb": rss_end,
        "outbox_pending_end": left,
        "logouts_expected": len(work.ended_sids),
        "logouts_missing": len(missing),
        "failures": work.failures,
    }


def figures(stat: Stat) -> dict[str, Any]:
    ms = sorted(x * 1000 for x in stat.latencies) or [0.0]
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return {
        "count": len(stat.latencies),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(p99, 1),
        "errors": stat.errors,
    }


def verdicts(result: dict[str, Any]) -> list[str]:
    """The targets missed, in words (none: all met)."""
    missed = []
    if result["errors"]:
        missed.append(f"{result['errors']} errors (target 0)")
    if result["rss_end_mb"] > RSS_LIMIT * result["rss_start_mb"]:
        missed.append(f"RSS grew {result['rss_start_mb']} -> {result['rss_end_mb']} MiB (> 1.25x)")
    if result["outbox_pending_end"] or result["logouts_missing"]:
        missed.append(
            f"{result['outbox_pending_end']} logouts undelivered, "
            f"{result['logouts_missing']} not received"
        )
    return missed


def print_table(result: dict[str, Any]) -> None:
    print(f"{'kind':<14}{'count':>8}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for kind, k in result["kinds"].items():
        rate = k["count"] / result["seconds"]
        print(
            f"{kind:<14}{k['count']:>8}{rate:>9.1f}{k['p50_ms']:>9}{k['p99_ms']:>9}{k['errors']:>8}"
        )
    print(
        f"RSS of the 2 replicas + 2 workers: {result['rss_start_mb']} MiB after warm-up, "
        f"{result['rss_end_mb']} MiB at the end; back-channel logouts expected "
        f"{result['logouts_expected']}, not received {result['logouts_missing']}, "
        f"outbox pending {result['outbox_pending_end']}; requests answered per replica "
        f"{result['requests_per_replica']}"
    )
    for line in result["failures"]:
        print("  failure:", line)


def main() -> int:
    seconds = float(os.environ.get("LOAD_SECONDS", "600"))
    logins = int(os.environ.get("LOAD_MEMBERS", "300"))
    server = os.environ.get("LOAD_POSTGRES", DEFAULT_POSTGRES)
    with scratch_postgres(server, "identity_load") as url:
        result = asyncio.run(run(url, seconds, logins))
    print_table(result)
    del result["failures"]  # printed above; the JSON keeps the figures
    missed = verdicts(result)
    print("targets: " + ("all met" if not missed else "MISSED: " + "; ".join(missed)))
    print(json.dumps(result))
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
