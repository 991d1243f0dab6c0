"""Member-list API latency (`GET /api/admin/members`) at 100 and at 100,000 members of a tenant.

    python -m benchmarks.admin_members [--database-url URL] [--repeat 200] [--large 100000]

identity and the simulator run as processes (tests/helpers/stack.py), on a temporary SQLite file
and then on a scratch PostgreSQL database (`identity_bench_<random>`, dropped afterwards), unless
`--database-url` names one. Two tenants share the database: `small` with `--small` members and
`large` with `--large`. Each is provisioned through real signed calls (newInstance, tenantSync,
applicationSync, allOrgSync of 20 departments, authSync of its admin); the other members and their
authorisations are then written straight into the tables with Core bulk inserts (names Chinese and
Latin, userNames `u000001`…, spread over the departments, about 1% disabled, 0.5% cancelled, 0.5%
deleted; PostgreSQL is then ANALYZEd, as autovacuum would). Each tenant's admin signs in through
the simulator (Flow B) and reads, `--repeat` times after a warm-up, one request at a time,
alternating the two tenants request by request so that both see the same machine load:

- the first page (limit 50);
- a middle page: the 50 members around the middle one (the cursor of member n/2 - 25);
- a search: `q=诸葛`, a name prefix seeded on exactly 5 members of each tenant;
- a POST to `/_bench/constant` in the same identity process (tests/helpers/servers.py), the
  HTTP floor (interleaved with the first pages).

Other filters the console offers are measured the same way `--extra-repeat` times, without a
target: a department (`org_code`, 1 member in 19), a small department (the 5 members named
诸葛…), a common surname (`q=王`, about 1 in 30) and `state=disabled` (about 1 in 100).

Latency is client-side, request to parsed answer. Target: for the first page, the
middle page and the search, the median at 100,000 members within 2x the median at 100. Prints a
table per database, then the figures as one JSON line (the last line of stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text

from benchmarks.authsync import DEFAULT_POSTGRES, seller_key_file, sqlite_database
from identity.admin.service import encode_cursor
from identity.db import Database, utcnow
from identity.migrate import upgrade
from identity.models import ACTIVE, CANCELLED, DELETED, Authorisation, Member
from identity.simulator.scenario import Scenario
from tests.helpers.servers import scratch_postgres
from tests.helpers.stack import Browser, Stack, running_stack

APP_ID = "bench-app"
PAGE = 50
RARE, COMMON = "诸葛", "王"  # the search: 5 members a tenant; the common surname: about 1 in 30
# fmt: off
DEPARTMENTS = (
    "研发部", "前端组", "后端组", "测试组", "运维组", "数据组", "安全组", "产品部", "设计部",
    "市场部", "销售部", "客服部", "财务部", "法务部", "人力资源部", "行政部", "采购部",
    "供应链部", "质量部", "培训部",
)
FIRST = (
    "James", "Mary", "Wei", "Anna", "David", "Linda", "Kevin", "Grace", "Daniel", "Sophie",
    "Ming", "Lucas", "Emma", "Ivan",
)
LAST = (
    "Smith", "Chen", "Wang", "Garcia", "Müller", "Tanaka", "Kim", "Nguyen", "Rossi", "Dubois",
    "Ivanova", "Santos",
)
# fmt: on
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁"  # one character each
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂浩然子涵"
TARGET = 2.0
MAIN = ("first page", "middle page", "search")
EXTRA = ("department", "small department", "common surname", "state=disabled")


def tenant_spec(code: str, index: int) -> dict[str, Any]:
    root = {"orgCode": code, "orgName": f"{code.title()} 集团", "parentCode": ""}
    departments = [
        {"orgCode": f"{code}-d{k:02d}", "orgName": name, "parentCode": code}
        for k, name in enumerate(DEPARTMENTS, 1)
    ]
    admin = {
        "userName": "admin",
        "name": "管理员 Admin",
        "orgCode": code,
        "role": "admin",
        "password": "admin-pw",
        "mobile": f"+861380000{index:04d}",
    }
    return {
        "tenantId": f"t-{code}-{index:04d}",
        "tenantCode": code,
        "name": f"{code.title()} 企业",
        "clientId": f"{code}-client-id",
        "clientSecret": f"{code}-client-secret",
        "order": {"orderId": f"CS-{code.upper()}", "orderLineId": f"CS-{code.upper()}-1"},
        "departments": [root, *departments],
        "members": [admin],
    }


def scenario() -> Scenario:
    tenants = [tenant_spec("small", 1), tenant_spec("large", 2)]
    return Scenario.model_validate({"appId": APP_ID, "tenants": tenants})


def rare(i: int, size: int) -> bool:
    """Exactly 5 members of each tenant, spread over its range: the ones named 诸葛…, the only
    ones in the last department."""
    return i % max(size // 5, 1) == size // 10


def person_name(rng: random.Random, i: int, size: int) -> str:
    if rare(i, size):
        return RARE + rng.choice(["亮", "瑾", "恪", "诞", "瞻"])
    if rng.random() < 0.3:
        return f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    given = "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
    return rng.choice(SURNAMES) + given


def department(code: str, i: int, size: int) -> str:
    last = len(DEPARTMENTS)
    return f"{code}-d{last if rare(i, size) else 1 + i % (last - 1):02d}"


def flags(i: int) -> tuple[bool, bool, bool]:
    """Member i's (deleted, authorisation cancelled, disabled): about 0.5%, 0.5% and 1%."""
    return i % 199 == 7, i % 197 == 11, i % 101 == 3


def seed_rows(
    tenant_id: str, code: str, instance_id: str, size: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Members u000001 … u{size-1} (the provisioned admin makes `size`) and one authorisation
    each for the app, in a realistic mix of states."""
    rng, now = random.Random(f"{tenant_id}-{size}"), utcnow()
    members, auths = [], []
    for i in range(1, size):
        user_name = f"u{i:06d}"
        deleted, cancelled, disabled = flags(i)
        members.append(
            {
                "tenant_id": tenant_id,
                "user_name": user_name,
                "name": person_name(rng, i, size),
                "org_code": department(code, i, size),
                "position": rng.choice(["工程师", "经理", "专员", "Engineer", None]),
                "employee_code": f"E{i:06d}",
                "mobile": f"+86139{i:08d}",
                "email": f"{user_name}@{code}.example.com",
                "state": DELETED if deleted else ACTIVE,
                "last_login_at": now if rng.random() < 0.5 else None,
                "last_sync_time": "20261201090000000",
                "created_at": now,
                "updated_at": now,
            }
        )
        auths.append(
            {
                "tenant_id": tenant_id,
                "app_id": APP_ID,
                "user_name": user_name,
                "instance_id": instance_id,
                "role": "admin" if i % 5000 == 0 else "user",
                "enabled": not (disabled or deleted),
                "state": DELETED if deleted else CANCELLED if cancelled else ACTIVE,
                "last_sync_time": "20261201090000000",
                "created_at": now,
                "updated_at": now,
            }
        )
    return members, auths


async def seed(url: str, stack: Stack, sizes: dict[str, int]) -> float:
    started = time.perf_counter()
    db = Database(url)
    try:
        for code, size in sizes.items():
            tenant_id = stack.tenant(code).tenant_id
            async with db.transaction() as session:
                instance_id = await session.scalar(
                    select(Authorisation.instance_id).where(
                        Authorisation.tenant_id == tenant_id, Authorisation.user_name == "admin"
                    )
                )
                assert instance_id, "the admin's authSync did not land"
                members, auths = seed_rows(tenant_id, code, instance_id, size)
                tables = Member.metadata.tables
                for start in range(0, len(members), 10_000):
                    chunk = slice(start, start + 10_000)
                    await session.execute(insert(tables["members"]), members[chunk])
                    await session.execute(insert(tables["authorisations"]), auths[chunk])
        if db.engine.dialect.name == "postgresql":
            async with db.engine.connect() as connection:
                await connection.execute(text("ANALYZE members, authorisations"))
                await connection.commit()
    finally:
        await db.dispose()
    return time.perf_counter() - started


@dataclass(frozen=True)
class Operation:
    name: str
    params: dict[str, str]
    expect: int | None  # items on the page; None: at least one


def operations(code: str, size: int) -> list[Operation]:
    middle = size // 2 - PAGE // 2
    disabled = sum(1 for i in range(1, size) if flags(i) == (False, False, True))
    return [
        Operation("first page", {"limit": str(PAGE)}, PAGE),
        Operation(
            "middle page", {"limit": str(PAGE), "cursor": encode_cursor(f"u{middle:06d}")}, PAGE
        ),
        Operation("search", {"limit": str(PAGE), "q": RARE}, 5),
        Operation("department", {"limit": str(PAGE), "org_code": department(code, 7, size)}, None),
        Operation(
            "small department",
            {"limit": str(PAGE), "org_code": department(code, size // 10, size)},
            5,
        ),
        Operation("common surname", {"limit": str(PAGE), "q": COMMON}, None),
        Operation("state=disabled", {"limit": str(PAGE), "state": "disabled"}, min(disabled, PAGE)),
    ]


async def read(browser: Browser, op: Operation) -> float:
    started = time.perf_counter()
    response = await browser.http.get(
        browser.stack.identity + "/api/admin/members", params=op.params
    )
    body = response.json()
    took = time.perf_counter() - started
    assert response.status_code == 200, response.text
    count = len(body["items"])
    assert count == op.expect or (op.expect is None and count > 0), (op, count)
    return took


async def constant(browser: Browser) -> float:
    started = time.perf_counter()
    response = await browser.http.post(browser.stack.identity + "/_bench/constant")
    response.json()
    took = time.perf_counter() - started
    assert response.status_code == 200, response.text
    return took


async def measure(
    stack: Stack, sizes: dict[str, int], repeat: int, extra_repeat: int
) -> dict[str, dict[str, list[float]]]:
    browsers = {code: stack.browser() for code in sizes}
    times: dict[str, dict[str, list[float]]] = {code: {} for code in sizes}
    try:
        for code, browser in browsers.items():
            landed = await browser.flow_b(code, f"admin@{code}", "admin-pw")
            assert landed.status_code == 200, landed.text
        ops = {code: operations(code, size) for code, size in sizes.items()}
        for name, n in [*((m, repeat) for m in MAIN), *((e, extra_repeat) for e in EXTRA)]:
            warm_up = max(n // 10, 3)  # the first rounds are not measured
            for round_ in range(warm_up + n):
                order = list(browsers.items())
                for code, browser in order[:: -1 if round_ % 2 else 1]:  # each goes first in turn
                    op = next(o for o in ops[code] if o.name == name)
                    took = await read(browser, op)
                    if round_ >= warm_up:
                        times[code].setdefault(name, []).append(took)
                    if name == MAIN[0]:  # the floor, interleaved with the first pages
                        took = await constant(browser)
                        if round_ >= warm_up:
                            times[code].setdefault("constant", []).append(took)
    finally:
        for browser in browsers.values():
            await browser.close()
    return times


def p50(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 2)


def p95(values: list[float]) -> float:
    return round(statistics.quantiles(values, n=20)[-1] * 1000, 2)


async def bench(url: str, key_file: Path, args: argparse.Namespace) -> dict[str, Any]:
    sizes = {"small": args.small, "large": args.large}
    env = {"IDENTITY_LOG_LEVEL": "WARNING", "BENCH_CONSTANT_ROUTE": "1"}
    async with running_stack(url, key_file, scenario(), identity_env=env) as stack:
        for code in sizes:
            await stack.provision(code)
        seeded = await seed(url, stack, sizes)
        times = await measure(stack, sizes, args.repeat, args.extra_repeat)
    figures: dict[str, Any] = {"seed_s": round(seeded, 1), "members": sizes, "operations": {}}
    for name in ("constant", *MAIN, *EXTRA):
        small, large = times["small"][name], times["large"][name]
        figures["operations"][name] = {
            "n": len(small),
            "small_ms_p50": p50(small),
            "small_ms_p95": p95(small),
            "large_ms_p50": p50(large),
            "large_ms_p95": p95(large),
            "ratio_p50": round(statistics.median(large) / statistics.median(small), 2),
        }
    worst = max(figures["operations"][name]["ratio_p50"] for name in MAIN)
    figures["target"] = f"median at {args.large} within {TARGET}x the median at {args.small}"
    figures["worst_ratio"] = worst
    figures["target_met"] = worst <= TARGET
    return figures


def print_table(label: str, figures: dict[str, Any]) -> None:
    small, large = figures["members"]["small"], figures["members"]["large"]
    head = ("operation", f"{small:,} p50 ms", "p95 ms", f"{large:,} p50 ms", "p95 ms", "L/S p50")
    print(f"\n[{label}] {small:,} and {large:,} members, seeded in {figures['seed_s']} s")
    print(f"{head[0]:<16}" + "".join(f"{h:>15}" for h in head[1:]))
    for name, row in figures["operations"].items():
        if name == EXTRA[0]:
            print(f"-- other filters, no target (n={row['n']})")
        cells = (row["small_ms_p50"], row["small_ms_p95"], row["large_ms_p50"], row["large_ms_p95"])
        ratio = f"{row['ratio_p50']:.2f}" + (" *" if name in MAIN else "")
        print(f"{name:<16}" + "".join(f"{c:>15.2f}" for c in cells) + f"{ratio:>15}")
    verdict = "met" if figures["target_met"] else "NOT met"
    print(f"* target: within {TARGET}x ({verdict}: worst {figures['worst_ratio']:.2f}x)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--database-url", help="one database to use (default: SQLite and PG)")
    parser.add_argument("--postgres-server", default=DEFAULT_POSTGRES)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=200, help="timed reads per operation")
    parser.add_argument("--extra-repeat", type=int, default=50, help="for the other filters")
    args = parser.parse_args(argv)
    if min(args.small, args.large) < 2 * PAGE:
        parser.error(f"a tenant needs at least {2 * PAGE} members (two full pages)")

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="identity-bench-") as tmp:
        key_file = seller_key_file(Path(tmp))

        def run(label: str, url: str) -> None:
            upgrade(url)
            results[label] = asyncio.run(bench(url, key_file, args))
            print_table(label, results[label])

        if args.database_url:
            run(
                "postgresql" if args.database_url.startswith("postgres") else "sqlite",
                args.database_url,
            )
        else:
            with sqlite_database() as url:
                run("sqlite", url)
            with scratch_postgres(args.postgres_server, "identity_bench") as url:
                run("postgresql", url)
    print(json.dumps({"admin_members_benchmark": results}, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
