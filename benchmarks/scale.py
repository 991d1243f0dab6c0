"""A large directory against an empty one: authSync, login, introspection and the member list.

    python -m benchmarks.scale [--database sqlite|postgresql] [--members 1000000]
        [--tenants 10000] [--large 100000] [--repeat 30] [--syncs 10]

Two databases side by side, each served by its own identity and simulator processes
(tests/helpers/stack.py): `empty`, where one tenant (`bench`: an admin, a member and 20
departments) is provisioned through real signed calls, and `full`, provisioned the same way and
then filled straight in the database up to `--members` members across `--tenants` tenants:
`bench` gets `--large` of them, the others share the rest, each with its instance, binding, app
credential (the client secret encrypted with `identity.crypto.Cipher`, as tenantSync stores
it), five departments, and one authorisation per member (about 1% disabled, 0.5% cancelled and
0.5% deleted members). Members and authorisations are written by INSERT ... SELECT over a
counter, in slices, so nothing of them passes through this process; then PostgreSQL is VACUUM
ANALYZEd, as autovacuum would after such an insert, and SQLite's log checkpointed into its file.
Without `--database` it runs on a temporary SQLite file, then on scratch PostgreSQL databases
(`identity_bench_*`, dropped after).

Each round times, on both sides one after the other (each going first in turn), through HTTP:
an authSync of 500 new users into `bench` (signed), a member's login through the simulator's
auth centre (Flow B, a fresh browser), an introspection of a live access token, and the admin's
first member-list page (limit 50). Target: the median on `full` within 1.2x the median on `empty`.
On `full` alone the admin filters that read further to fill a page, `state=disabled` (about 1%
of `bench`) and a common surname (`q=王`, about 3%), are timed against the unfiltered first page
in the same rounds: target within 1.5x. Prints a table per database, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx

from benchmarks.admin_members import APP_ID, GIVEN, SURNAMES, tenant_spec
from benchmarks.authsync import DEFAULT_POSTGRES, seller_key_file, sqlite_database
from benchmarks.scale_seed import seed
from identity.db import Database
from identity.migrate import upgrade
from identity.provider import clients
from identity.simulator.scenario import Scenario
from tests.helpers.oidc_app import REDIRECT, App, tokens_for
from tests.helpers.servers import scratch_postgres
from tests.helpers.stack import Stack, running_stack

SIDES = ("empty", "full")
MAIN = ("authSync (500 users)", "login", "introspection", "member list")
FILTERS = ("state=disabled", "q=王")
TARGET, FILTER_TARGET = 1.2, 1.5
SYNC_USERS = 500


def scenario() -> Scenario:
    spec = tenant_spec("bench", 1)
    spec["members"].append(
        {"userName": "alice", "name": "Alice 王", "orgCode": "bench-d01", "password": "alice-pw"}
    )
    return Scenario.model_validate({"appId": APP_ID, "tenants": [spec]})


class Side:
    """One database and its processes, signed in: the admin's browser, the app's token."""

    def __init__(self, stack: Stack, db: Database) -> None:
        self.stack, self.db = stack, db
        self.admin = stack.browser()
        self.app: App | None = None
        self.token = ""
        self.synced = 0

    async def sign_in(self, http: httpx.AsyncClient) -> None:
        landed = await self.admin.flow_b("bench", "admin@bench", "admin-pw")
        assert landed.status_code == 200, landed.text
        registration = clients.Registration(
            app_id=APP_ID,
            name="Bench app",
            redirect_uris=[REDIRECT],
            post_logout_redirect_uris=[],
            backchannel_logout_uri=None,
            initiate_login_uri=None,
            public=False,
        )
        async with self.db.transaction() as session:
            added = await clients.add(session, registration)
            client_id, secret = added.client_id, added.secret
        assert secret is not None
        config = (await http.get(self.stack.identity + "/.well-known/openid-configuration")).json()
        self.app = App(client_id, secret, config, http)
        browser = self.stack.browser()
        try:
            tokens = await tokens_for(self.app, browser, account="alice@bench", tenant="bench")
        finally:
            await browser.close()
        self.token = tokens["access_token"]

    async def auth_sync(self) -> float:
        sender, tenant = self.stack.sender, self.stack.tenant("bench")
        batch, self.synced = self.synced, self.synced + 1
        users = [sync_user(f"s{batch:04d}-{k:03d}", k) for k in range(SYNC_USERS)]
        body = {
            "instanceId": await sender.instance_id(tenant),
            "tenantId": tenant.tenant_id,
            "appId": APP_ID,
            "userList": users,
            "currentSyncTime": sender.sync_time(),
            "flag": 1,
            "testFlag": 0,
            "timeStamp": sender.sync_time(),
        }
        started = time.perf_counter()
        answer = await sender.kit("authSync", body)
        took = time.perf_counter() - started
        assert answer["resultCode"] == "000000", answer
        return took

    async def login(self) -> float:
        browser = self.stack.browser()
        try:
            started = time.perf_counter()
            landed = await browser.flow_b("bench", "alice@bench", "alice-pw")
            took = time.perf_counter() - started
        finally:
            await browser.close()
        assert landed.status_code == 200 and "/sso/callback" in str(browser.history[-2].url), (
            landed.status_code,
            landed.text[:300],
        )
        return took

    async def introspect(self) -> float:
        assert self.app is not None
        started = time.perf_counter()
        answer = await self.app.post("introspection_endpoint", token=self.token)
        active = answer.json()["active"]
        took = time.perf_counter() - started
        assert answer.status_code == 200 and active is True, answer.text
        return took

    async def page(self, **params: str) -> float:
        started = time.perf_counter()
        answer = await self.admin.http.get(
            self.stack.identity + "/api/admin/members", params={"limit": "50", **params}
        )
        items = answer.json()["items"]
        took = time.perf_counter() - started
        assert answer.status_code == 200 and len(items) == 50, (answer.status_code, answer.text)
        return took

    def operations(self) -> dict[str, Callable[[], Awaitable[float]]]:
        return {
            MAIN[0]: self.auth_sync,
            MAIN[1]: self.login,
            MAIN[2]: self.introspect,
            MAIN[3]: self.page,
            FILTERS[0]: lambda: self.page(state="disabled"),
            FILTERS[1]: lambda: self.page(q="王"),
        }

    async def close(self) -> None:
        await self.admin.close()


def sync_user(user_name: str, k: int) -> dict[str, Any]:
    return {
        "userName": user_name,
        "name": f"{SURNAMES[k % len(SURNAMES)]}{GIVEN[k % len(GIVEN)]}",
        "orgCode": f"bench-d{1 + k % 20:02d}",
        "position": "工程师",
        "employeeCode": f"E{k:06d}",
        "role": "user",
        "enable": "true",
        "mobile": f"+86137{k:08d}",
        "email": f"{user_name}@bench.example.com",
    }


async def measure(
    sides: dict[str, Side], args: argparse.Namespace
) -> dict[str, dict[str, list[float]]]:
    """Every operation on both sides, round after round, each side going first in turn; the
    filters on `full` only, next to its first page. The first rounds warm up, unmeasured."""
    times: dict[str, dict[str, list[float]]] = {side: {} for side in sides}
    warm_up = max(args.repeat // 10, 2)
    for round_ in range(warm_up + args.repeat):
        order = list(sides.items())[:: -1 if round_ % 2 else 1]
        for name in (*MAIN, *FILTERS):
            if name == MAIN[0] and round_ >= warm_up + args.syncs:
                continue
            for label, side in order:
                if name in FILTERS and label != "full":
                    continue
                took = await side.operations()[name]()
                if round_ >= warm_up:
                    times[label].setdefault(name, []).append(took)
    return times


@asynccontextmanager
async def running_sides(
    urls: dict[str, str], key_file: Path, args: argparse.Namespace
) -> AsyncIterator[tuple[dict[str, Side], float]]:
    env = {"IDENTITY_LOG_LEVEL": "WARNING"}
    async with AsyncExitStack() as stack:
        sides: dict[str, Side] = {}
        for label, url in urls.items():
            running = await stack.enter_async_context(
                running_stack(url, key_file, scenario(), identity_env=env)
            )
            await running.provision("bench")
            db = Database(url)
            stack.push_async_callback(db.dispose)
            sides[label] = Side(running, db)
            stack.push_async_callback(sides[label].close)
        started = time.perf_counter()
        await seed(sides["full"].db, "bench", args.members, args.tenants, args.large)
        seeded = time.perf_counter() - started
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=60))
        for side in sides.values():
            await side.sign_in(http)
        yield sides, seeded


def ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 2)


def figures_of(
    times: dict[str, dict[str, list[float]]], seeded: float, args: argparse.Namespace
) -> dict[str, Any]:
    empty, full = times["empty"], times["full"]
    rows: dict[str, Any] = {}
    for name in MAIN:
        ratio = statistics.median(full[name]) / statistics.median(empty[name])
        rows[name] = {"n": len(full[name]), "empty_ms": ms(empty[name]), "full_ms": ms(full[name]),
                      "ratio": round(ratio, 2), "target": TARGET}  # fmt: skip
    page = statistics.median(full[MAIN[3]])
    for name in FILTERS:
        ratio = statistics.median(full[name]) / page
        rows[name] = {"n": len(full[name]), "page_ms": round(page * 1000, 2),
                      "filter_ms": ms(full[name]), "ratio": round(ratio, 2),
                      "target": FILTER_TARGET}  # fmt: skip
    return {
        "members": args.members,
        "tenants": args.tenants,
        "bench_tenant_members": args.large,
        "seed_s": round(seeded, 1),
        "operations": rows,
        "target_met": all(row["ratio"] <= row["target"] for row in rows.values()),
    }


def print_table(label: str, figures: dict[str, Any]) -> None:
    print(
        f"\n[{label}] {figures['members']:,} members across {figures['tenants']:,} tenants "
        f"({figures['bench_tenant_members']:,} in the measured one), seeded in "
        f"{figures['seed_s']} s"
    )
    print(f"{'operation':<22}{'empty ms':>12}{'full ms':>12}{'full/empty':>12}{'target':>9}")
    for name in MAIN:
        row = figures["operations"][name]
        cells = f"{row['empty_ms']:>12.2f}{row['full_ms']:>12.2f}{row['ratio']:>12.2f}"
        print(f"{name:<22}{cells}{'≤ ' + str(row['target']):>9}")
    print(f"{'filter, on full':<22}{'page ms':>12}{'filter ms':>12}{'filter/page':>12}")
    for name in FILTERS:
        row = figures["operations"][name]
        cells = f"{row['page_ms']:>12.2f}{row['filter_ms']:>12.2f}{row['ratio']:>12.2f}"
        print(f"{name:<22}{cells}{'≤ ' + str(row['target']):>9}")
    print("targets " + ("met" if figures["target_met"] else "NOT met"))


@contextmanager
def databases(kind: str, server: str) -> Iterator[dict[str, str]]:
    if kind == "sqlite":
        with sqlite_database() as empty, sqlite_database() as full:
            yield {"empty": empty, "full": full}
    else:
        with (
            scratch_postgres(server, "identity_bench") as empty,
            scratch_postgres(server, "identity_bench") as full,
        ):
            yield {"empty": empty, "full": full}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), action="append")
    parser.add_argument("--postgres-server", default=DEFAULT_POSTGRES)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000, help="members of the measured tenant")
    parser.add_argument("--repeat", type=int, default=30, help="timed rounds")
    parser.add_argument("--syncs", type=int, default=10, help="timed authSyncs (new users each)")
    args = parser.parse_args(argv)
    if not 100 <= args.large <= args.members or args.tenants < 2:
        parser.error("--large must be at least 100 and at most --members; --tenants at least 2")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="identity-bench-") as tmp:
        key_file = seller_key_file(Path(tmp))
        for kind in args.database or ["sqlite", "postgresql"]:
            with databases(kind, args.postgres_server) as urls:
                for url in urls.values():
                    upgrade(url)
                results[kind] = asyncio.run(bench(urls, key_file, args))
            print_table(kind, results[kind])
    print(json.dumps({"scale_benchmark": results}, ensure_ascii=False), flush=True)
    return 0


async def bench(urls: dict[str, str], key_file: Path, args: argparse.Namespace) -> dict[str, Any]:
    async with running_sides(urls, key_file, args) as (sides, seeded):
        times = await measure(sides, args)
    return figures_of(times, seeded, args)


if __name__ == "__main__":
    raise SystemExit(main())
