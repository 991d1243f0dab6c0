"""The apps' directory: SCIM listing at 100 and at 100,000 members, and how long a 500-member
authSync takes to reach an app as change events.

    python -m benchmarks.directory [--database sqlite|postgresql] [--large 100000]
        [--repeat 20] [--syncs 5]

Two databases side by side, each served by its own identity and simulator processes
(tests/helpers/stack.py), the tenant `bench` provisioned through real signed calls, then filled
straight in the database (benchmarks/scale_seed.py): `small` to 100 members, `large` to
`--large` (about 0.5% of them deleted, so the app lists a few less). An app's backend
registered with `directory.read` reads `bench`'s users 100 at a time through HTTP with a
client-credentials token: on `small` its one page, on `large` the first page, one in the
middle and the last, each round on both sides one after the other (each going first in turn).
Target: every page on `large` within 2x the page on `small`.

Then, on `small`, the same app registered an events URI served in this process (it checks
every request with the `standardwebhooks` library) and `identity worker` runs, looking for due
deliveries every 0.1 s: each of `--syncs` authSyncs of 500 new users is timed from the moment
it is sent to the moment the receiver holds all 500 `directory.user.created` events, with how
many requests carried them. Prints a table per database, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx

from benchmarks.admin_members import APP_ID
from benchmarks.authsync import DEFAULT_POSTGRES, seller_key_file
from benchmarks.scale import databases, scenario, sync_user
from benchmarks.scale_seed import seed
from identity.db import Database
from identity.migrate import upgrade
from identity.provider import clients
from tests.helpers.faults import worker
from tests.helpers.stack import Stack, running_stack
from tests.helpers.webhooks import Receiver, receiving, subscribe

TARGET = 2.0
PAGE = 100
SYNC_USERS = 500


class Side:
    """One database, its processes, and a directory reader's token."""

    def __init__(self, stack: Stack, db: Database, members: int) -> None:
        self.stack, self.db, self.members = stack, db, members
        self.http = httpx.AsyncClient(timeout=60)
        self.token = ""
        self.tenant_id = stack.tenant("bench").tenant_id

    async def sign_in(self) -> None:
        registration = clients.Registration(
            app_id=APP_ID, name="Bench reader", redirect_uris=[], post_logout_redirect_uris=[],
            backchannel_logout_uri=None, initiate_login_uri=None, public=False,
            scopes=[clients.DIRECTORY_SCOPE],
        )  # fmt: skip
        async with self.db.transaction() as session:
            added = await clients.add(session, registration)
        answer = await self.http.post(
            self.stack.identity + "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(added.client_id, added.secret or ""),
        )
        self.token = answer.json()["access_token"]
        listed = await self.http.get(
            f"{self.stack.identity}/scim/v2/{self.tenant_id}/Users",
            params={"count": "0"},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        self.members = listed.json()["totalResults"]  # the seed deletes some, never listed

    async def page(self, start: int) -> float:
        url = f"{self.stack.identity}/scim/v2/{self.tenant_id}/Users"
        started = time.perf_counter()
        answer = await self.http.get(
            url,
            params={"startIndex": str(start), "count": str(PAGE)},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        body = answer.json()
        took = time.perf_counter() - started
        assert answer.status_code == 200 and len(body["Resources"]) == PAGE, answer.text[:300]
        assert body["totalResults"] == self.members, body["totalResults"]
        return took


def pages(sides: dict[str, Side]) -> dict[str, tuple[str, int]]:
    large = sides["large"].members
    return {
        "small: the page": ("small", 1),
        "large: first page": ("large", 1),
        "large: middle page": ("large", large // 2 + 1),
        "large: last page": ("large", large - PAGE + 1),
    }


async def measure_pages(sides: dict[str, Side], repeat: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    which = pages(sides)
    for round_ in range(2 + repeat):  # two rounds warm up, unmeasured
        order = list(which.items())[:: -1 if round_ % 2 else 1]
        for name, (label, start) in order:
            took = await sides[label].page(start)
            if round_ >= 2:
                times.setdefault(name, []).append(took)
    return times


async def measure_events(side: Side, database_url: str, syncs: int) -> dict[str, Any]:
    """authSync of 500 new users to the last of their events at a receiver, `syncs` times."""
    async with receiving() as receiver:
        await subscribe(side.db, receiver, app_id=APP_ID)
        with worker(database_url):
            latencies, requests = [], []
            for n in range(syncs):
                before = len(receiver.deliveries)
                started = time.perf_counter()
                await _auth_sync(side.stack, n)
                await _until_all_arrived(receiver, f"ev{n:03d}-", SYNC_USERS)
                latencies.append(time.perf_counter() - started)
                requests.append(len(receiver.deliveries) - before)
    return {
        "syncs": syncs,
        "users_per_sync": SYNC_USERS,
        "median_s": round(statistics.median(latencies), 3),
        "max_s": round(max(latencies), 3),
        "requests_per_sync": statistics.median(requests),
    }


async def _auth_sync(stack: Stack, n: int) -> None:
    sender, tenant = stack.sender, stack.tenant("bench")
    body = {
        "instanceId": await sender.instance_id(tenant),
        "tenantId": tenant.tenant_id,
        "appId": APP_ID,
        "userList": [sync_user(f"ev{n:03d}-{k:03d}", k) for k in range(SYNC_USERS)],
        "currentSyncTime": sender.sync_time(),
        "flag": 1,
        "testFlag": 0,
        "timeStamp": sender.sync_time(),
    }
    answer = await sender.kit("authSync", body)
    assert answer["resultCode"] == "000000", answer


async def _until_all_arrived(receiver: Receiver, prefix: str, expected: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        arrived = sum(
            1
            for event in receiver.events()
            if event["type"] == "directory.user.created"
            and str((event["data"].get("resource") or {}).get("userName", "")).startswith(prefix)
        )
        if arrived >= expected:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"only part of the events of {prefix} arrived in 120 s")


@asynccontextmanager
async def running_sides(
    urls: dict[str, str], key_file: Path, large: int
) -> AsyncIterator[dict[str, Side]]:
    env = {"IDENTITY_LOG_LEVEL": "WARNING"}
    sizes = {"small": 100, "large": large}
    async with AsyncExitStack() as stack:
        sides: dict[str, Side] = {}
        for label, url in urls.items():
            running = await stack.enter_async_context(
                running_stack(url, key_file, scenario(), identity_env=env)
            )
            await running.provision("bench")
            db = Database(url)
            stack.push_async_callback(db.dispose)
            await seed(db, "bench", sizes[label] + 10, 2, sizes[label])
            sides[label] = Side(running, db, sizes[label])
            stack.push_async_callback(sides[label].http.aclose)
            await sides[label].sign_in()
        yield sides


def figures_of(times: dict[str, list[float]], events: dict[str, Any]) -> dict[str, Any]:
    small = statistics.median(times["small: the page"])
    rows = {
        name: {"n": len(values), "median_ms": round(statistics.median(values) * 1000, 2),
               "ratio": round(statistics.median(values) / small, 2)}
        for name, values in times.items()
    }  # fmt: skip
    met = all(row["ratio"] <= TARGET for row in rows.values())
    return {"pages": rows, "target": TARGET, "target_met": met, "events": events}


def print_table(label: str, figures: dict[str, Any], large: int) -> None:
    print(f"\n[{label}] SCIM /Users, {PAGE} a page: 100 members against {large:,}")
    print(f"{'page':<24}{'median ms':>12}{'/ small':>10}")
    for name, row in figures["pages"].items():
        print(f"{name:<24}{row['median_ms']:>12.2f}{row['ratio']:>10.2f}")
    print(f"target ≤ {TARGET}: " + ("met" if figures["target_met"] else "NOT met"))
    ev = figures["events"]
    print(
        f"authSync of {ev['users_per_sync']} users → last event at the app: median "
        f"{ev['median_s']} s, max {ev['max_s']} s over {ev['syncs']} syncs, "
        f"{ev['requests_per_sync']} requests each"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), action="append")
    parser.add_argument("--postgres-server", default=DEFAULT_POSTGRES)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20, help="timed rounds of pages")
    parser.add_argument("--syncs", type=int, default=5, help="timed authSyncs for the events")
    args = parser.parse_args(argv)
    if args.large < 2 * PAGE:
        parser.error(f"--large must be at least {2 * PAGE}")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="identity-bench-") as tmp:
        key_file = seller_key_file(Path(tmp))
        for kind in args.database or ["sqlite", "postgresql"]:
            with databases(kind, args.postgres_server) as found:
                urls = {"small": found["empty"], "large": found["full"]}
                for url in urls.values():
                    upgrade(url)
                results[kind] = asyncio.run(bench(urls, key_file, args))
            print_table(kind, results[kind], args.large)
    print(json.dumps({"directory_benchmark": results}, ensure_ascii=False), flush=True)
    return 0


async def bench(urls: dict[str, str], key_file: Path, args: argparse.Namespace) -> dict[str, Any]:
    async with running_sides(urls, key_file, args.large) as sides:
        times = await measure_pages(sides, args.repeat)
        events = await measure_events(sides["small"], urls["small"], args.syncs)
    return figures_of(times, events)


if __name__ == "__main__":
    raise SystemExit(main())
