"""authSync throughput over real HTTP against a bare SQLAlchemy Core bulk upsert.

    python -m benchmarks.authsync [--database-url URL] [--calls 100] [--users 500] [--sequential]

Without `--database-url` it runs twice: on a temporary SQLite file and on a scratch PostgreSQL
database (`identity_bench_<random>` on postgresql://postgres@127.0.0.1:5432/test, dropped
afterwards). For each database it migrates, starts the service in a separate process and sends
`--calls` signed authSync calls one after the other over HTTP, each with `--users` NEW users.
The baseline runs in this process against the same tables: a plain INSERT .. ON CONFLICT DO
UPDATE of the same kind of rows into `members` and `authorisations` (other user names), one
transaction per batch. By default one HTTP call and one baseline batch alternate, so both see
the same table sizes and the same machine load (the host may be shared); `--sequential` runs all
HTTP calls first. One unmeasured warm-up call/batch precedes each side.

HTTP latency is client-side: from sending the request to the parsed answer (body building and
signing excluded). Users/s = users written / summed latencies.

Prints a table, then the figures as one JSON line (the last line of stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from identity.db import Database, insert_for, utcnow
from identity.marketplace.signing import Kind, sign_body
from identity.migrate import upgrade
from identity.models import Authorisation, Member
from tests.helpers.servers import ServiceProcesses, scratch_postgres, service_env

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
SECRET_KEY = "bench-master-key-0123456789abcdef"
BASIC_KEY = "bench-basic-key-0123456789"
KIT_KEY = "bench-kit-key-0123456789"
TENANT, APP, INSTANCE = "T-BENCH", "APP-BENCH", "I-BENCH"
SYNC_TIME = "20240101120000000"
EDGE = 10  # calls 1..EDGE against the last EDGE calls


def seller_key_file(folder: Path) -> Path:
    """A fresh seller RSA key (3072 bits, as the marketplace requires) as a PEM file."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    path = folder / "seller.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="identity-bench-") as directory:
        yield f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"


def user(name: str, i: int) -> dict[str, Any]:
    return {
        "userName": name,
        "name": f"Bench User {i}",
        "orgCode": f"ORG{i % 50:03d}",
        "position": "engineer",
        "employeeCode": f"E{i:06d}",
        "employeeType": 1,
        "role": "admin" if i % 100 == 0 else "user",
        "enable": "true",
        "mobile": f"+86138{i:08d}",
        "email": f"{name}@bench.example.com",
        "workPlace": "Nanjing",
        "entryDate": "2022-11-9",
    }


def auth_sync_body(users: list[dict[str, Any]]) -> bytes:
    body = {
        "instanceId": INSTANCE,
        "tenantId": TENANT,
        "appId": APP,
        "userList": users,
        "currentSyncTime": SYNC_TIME,
        "flag": 1,
        "testFlag": 0,
        "timeStamp": SYNC_TIME,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


class HttpSide:
    """Signed authSync calls over HTTP; each call is timed from request to parsed answer."""

    def __init__(self, base_url: str, users_per_call: int, run: str) -> None:
        self.client = httpx.AsyncClient(base_url=base_url, timeout=60.0)
        self.users_per_call = users_per_call
        self.run = run

    async def call(self, c: int) -> float:
        n = self.users_per_call
        body = auth_sync_body([user(f"{self.run}-http-{c}-{u}", c * n + u) for u in range(n)])
        nonce = uuid.uuid4().hex
        timestamp = str(int(time.time() * 1000))
        headers = {
            "content-type": "application/json",
            "x-sign": sign_body(Kind.KIT, KIT_KEY, nonce, timestamp, body),
            "x-timestamp": timestamp,
            "x-nonce": nonce,
        }
        started = time.perf_counter()  # body building and signing are the caller's, not timed
        response = await self.client.post(
            "/koogallery/produceAPI/v2/authSync", content=body, headers=headers
        )
        reply = response.json()
        elapsed = time.perf_counter() - started
        if response.status_code != 200 or reply.get("resultCode") != "000000":
            raise RuntimeError(f"call {c + 1} failed: {response.status_code} {reply}")
        return elapsed

    async def close(self) -> None:
        await self.client.aclose()


def baseline_rows(names: list[str], i0: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    now = utcnow()
    members, auths = [], []
    for k, name in enumerate(names):
        u = user(name, i0 + k)
        members.append(
            {
                "tenant_id": TENANT,
                "user_name": name,
                "name": u["name"],
                "org_code": u["orgCode"],
                "position": u["position"],
                "employee_code": u["employeeCode"],
                "employee_type": u["employeeType"],
                "mobile": u["mobile"],
                "email": u["email"],
                "work_place": u["workPlace"],
                "entry_date": u["entryDate"],
                "state": "active",
                "last_sync_time": SYNC_TIME,
                "created_at": now,
                "updated_at": now,
            }
        )
        auths.append(
            {
                "tenant_id": TENANT,
                "app_id": APP,
                "user_name": name,
                "instance_id": INSTANCE,
                "role": u["role"],
                "enabled": True,
                "state": "active",
                "last_sync_time": SYNC_TIME,
                "created_at": now,
                "updated_at": now,
            }
        )
    return members, auths


class BaselineSide:
    """Plain Core upserts of the same rows, one transaction per batch (row building timed)."""

    def __init__(self, url: str, rows_per_batch: int, run: str) -> None:
        self.db = Database(url)
        self.rows_per_batch = rows_per_batch
        self.run = run

    async def batch(self, b: int) -> float:
        started = time.perf_counter()
        names = [f"{self.run}-base-{b}-{u}" for u in range(self.rows_per_batch)]
        members, auths = baseline_rows(names, b * self.rows_per_batch)
        async with self.db.transaction() as session:
            insert = insert_for(session)
            for model, keys, rows in (
                (Member, ("tenant_id", "user_name"), members),
                (Authorisation, ("tenant_id", "app_id", "user_name"), auths),
            ):
                stmt = insert(model.__table__)
                stmt = stmt.on_conflict_do_update(
                    index_elements=list(keys),
                    set_={c: stmt.excluded[c] for c in rows[0] if c not in keys},
                )
                await session.execute(stmt, rows)
        return time.perf_counter() - started

    async def close(self) -> None:
        await self.db.dispose()


async def measure(
    base_url: str, url: str, calls: int, users: int, run: str, interleaved: bool
) -> tuple[list[float], list[float]]:
    """Per-call seconds of both sides. Interleaved (the default) alternates one HTTP call and
    one baseline batch, so both see the same table sizes and the same machine load."""
    http_side, base_side = HttpSide(base_url, users, run), BaselineSide(url, users, run)
    http: list[float] = []
    base: list[float] = []
    try:
        await http_side.call(-1)  # warm-up: connections, statement caches (not counted)
        await base_side.batch(-1)
        if interleaved:
            for i in range(calls):
                http.append(await http_side.call(i))
                base.append(await base_side.batch(i))
        else:
            http = [await http_side.call(i) for i in range(calls)]
            base = [await base_side.batch(i) for i in range(calls)]
    finally:
        await http_side.close()
        await base_side.close()
    return http, base


async def count_rows(url: str, run: str, side: str) -> int:
    db = Database(url)
    try:
        async with db.transaction() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(Member)
                .where(Member.user_name.like(f"{run}-{side}-%"), ~Member.user_name.like("%--1-%"))
            )
    finally:
        await db.dispose()
    return int(count or 0)


def _ms(values: list[float]) -> float:
    """Median, not mean: one WAL checkpoint in ten calls would otherwise read as growth."""
    return round(statistics.median(values) * 1000, 1)


def bench_one(
    label: str, url: str, calls: int, users: int, log_level: str, interleaved: bool
) -> dict[str, Any]:
    print(f"[{label}] migrating {make_url(url).render_as_string(hide_password=True)}", flush=True)
    upgrade(url)
    run = uuid.uuid4().hex[:6]
    env = service_env(
        url, secret_key=SECRET_KEY, basic_key=BASIC_KEY, kit_key=KIT_KEY, log_level=log_level
    )
    mode = "interleaved" if interleaved else "sequential"
    print(
        f"[{label}] {calls} authSync calls x {users} new users over HTTP and {calls} baseline "
        f"batches ({mode})",
        flush=True,
    )
    with ServiceProcesses(1, env) as service:
        http, base = asyncio.run(measure(service.urls[0], url, calls, users, run, interleaved))
    written = asyncio.run(count_rows(url, run, "http"))
    if written != calls * users:
        raise RuntimeError(f"the HTTP calls wrote {written} members, not {calls * users}")
    edge = min(EDGE, calls)
    http_rate = calls * users / sum(http)
    base_rate = calls * users / sum(base)
    return {
        "database": label,
        "mode": mode,
        "calls": calls,
        "users_per_call": users,
        "http_users_per_s": round(http_rate, 1),
        "baseline_users_per_s": round(base_rate, 1),
        "ratio": round(http_rate / base_rate, 3),
        "http_ms_first": _ms(http[:edge]),
        "http_ms_last": _ms(http[-edge:]),
        "http_last_over_first": round(
            statistics.median(http[-edge:]) / statistics.median(http[:edge]), 3
        ),
        "http_ms_median": round(statistics.median(http) * 1000, 1),
        "http_ms_max": round(max(http) * 1000, 1),
        "baseline_ms_first": _ms(base[:edge]),
        "baseline_ms_last": _ms(base[-edge:]),
        "baseline_ms_median": round(statistics.median(base) * 1000, 1),
        # The growth that is the service's own: HTTP last/first over baseline last/first, which
        # cancels machine-load drift common to both sides (meaningful when interleaved).
        "http_growth_vs_baseline": round(
            (statistics.median(http[-edge:]) / statistics.median(http[:edge]))
            / (statistics.median(base[-edge:]) / statistics.median(base[:edge])),
            3,
        ),
        "http_members_written": written,
    }


def print_table(results: list[dict[str, Any]]) -> None:
    if not results:
        return
    edge = min(EDGE, results[0]["calls"])
    n = results[0]["calls"]
    columns = [
        ("database", "database", "{}"),
        ("HTTP users/s", "http_users_per_s", "{:.0f}"),
        ("baseline users/s", "baseline_users_per_s", "{:.0f}"),
        ("ratio (>=0.5)", "ratio", "{:.2f}"),
        (f"median ms 1-{edge}", "http_ms_first", "{:.1f}"),
        (f"median ms {n - edge + 1}-{n}", "http_ms_last", "{:.1f}"),
        ("last/first (~1.0)", "http_last_over_first", "{:.2f}"),
        ("baseline ms first/last", None, ""),
        ("growth vs baseline", "http_growth_vs_baseline", "{:.2f}"),
    ]
    rows = []
    for r in results:
        cells = []
        for _, key, fmt in columns:
            if key is None:
                cells.append(f"{r['baseline_ms_first']:.1f}/{r['baseline_ms_last']:.1f}")
            else:
                cells.append(fmt.format(r[key]))
        rows.append(cells)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, (h, _, _) in enumerate(columns)]
    line = "  ".join(h.rjust(w) for (h, _, _), w in zip(columns, widths, strict=True))
    print()
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--database-url", help="one database to use (default: SQLite and PG)")
    parser.add_argument("--postgres-server", default=DEFAULT_POSTGRES)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--users", type=int, default=500, help="new users per call (max 500)")
    parser.add_argument("--log-level", default="INFO", help="the service's IDENTITY_LOG_LEVEL")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="all HTTP calls first, then all baseline batches (default: interleaved)",
    )
    args = parser.parse_args(argv)

    def bench(label: str, url: str) -> dict[str, Any]:
        return bench_one(label, url, args.calls, args.users, args.log_level, not args.sequential)

    results = []
    if args.database_url:
        label = "postgresql" if args.database_url.startswith("postgres") else "sqlite"
        results.append(bench(label, args.database_url))
    else:
        with sqlite_database() as url:
            results.append(bench("sqlite", url))
        with scratch_postgres(args.postgres_server, "identity_bench") as url:
            results.append(bench("postgresql", url))
    print_table(results)
    figures = json.dumps({"authsync_benchmark": results}, separators=(",", ":"))
    if args.json:
        args.json.write_text(figures + "\n")
    print(figures, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
