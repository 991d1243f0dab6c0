"""A signed-in member's page and the owner's local sign-in while strangers guess the owner's
password.

    python -m benchmarks.password_flood [--database-url URL] [--attackers 8] [--seconds 12]
                                        [--rate 0]

identity and the simulator run as processes (tests/helpers/stack.py) on a temporary SQLite file (or
the given database); `acme` is provisioned through signed calls, alice signs in through the
marketplace (her session is the one `/sso/me` reads), and bob, the owner, gets a local password
of his own (stored with identity's own functions, as a confirmed reset and change would leave
it). Then two phases, each measured the same way: rounds of 8 `GET /sso/me` as alice (a quarter
of a second apart) followed by one `POST /login` as bob with the right password.

- idle: 4 rounds, nothing else running;
- flood: `--attackers` processes post wrong passwords for `bob@acme` to `/login` for
  `--seconds`, each on one keep-alive connection (a CSRF cookie from `GET /login` first), one
  try at a time, the next as soon as the last is answered (as the attack was first seen;
  `--rate N`: at most N tries a second each), while the rounds go on until the flood ends.

Addresses: every process here connects from 127.0.0.1, which identity's default
`FORWARDED_ALLOW_IPS` trusts as a proxy, and says where it comes from in `X-Forwarded-For`, as
a load balancer would. alice sends none (identity sees 127.0.0.1); attacker n sends
`198.51.100.n`, so identity sees eight clients, a distributed attack (one address each), the
harder case for limits kept per address. bob's k-th sign-in comes from `203.0.113.k`: one
address is allowed 10 tries a minute, 3 at once, fewer than this benchmark's sign-ins of the
owner, so each is measured as a member signing in once from their own network.

Also reported: the CPU time identity (all its threads) used during the flood and the attackers
used in all (their interpreters' start included), which shows where the cores went: every
process here shares the machine's cores.

Targets: `/sso/me` median under flood within 2x of idle, and every sign-in of the owner under
flood succeeds. Prints a table, then the figures as one JSON line (the last line of stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2 as httpx
from sqlalchemy import update

from benchmarks.flood import run_migrated
from benchmarks.login import cpu_seconds
from identity.admin import passwords
from identity.db import Database, utcnow
from identity.models import LocalPassword
from tests.helpers.simulator_world import login_form, world
from tests.helpers.stack import Stack, running_stack

OWNER, OWNER_PASSWORD = "bob@acme", "Owner-Pass-2024"
ROUND_READS, READ_PAUSE, IDLE_ROUNDS = 8, 0.25, 4


async def give_owner_a_password(url: str, stack: Stack) -> None:
    """bob's own password, as a confirmed reset followed by his change would leave it."""
    tenant_id = stack.tenant("acme").tenant_id
    hashed = await passwords.hash_password(OWNER_PASSWORD)
    db = Database(url)
    try:
        async with db.transaction() as session:
            await passwords.store_initial(session, tenant_id, "bob", hashed, utcnow())
            await session.execute(
                update(LocalPassword)
                .where(LocalPassword.tenant_id == tenant_id, LocalPassword.user_name == "bob")
                .values(must_change=False)
            )
    finally:
        await db.dispose()


def csrf_of(page: str) -> dict[str, str]:
    return login_form(page).inputs


def attacker(identity: str, address: str, seconds: float, rate: float, answers: Any) -> None:
    """Post wrong passwords for the owner from `address` (as forwarded by the local proxy),
    `rate` a second at most (0: as fast as answered)."""
    counts: Counter[str] = Counter()
    headers = {"X-Forwarded-For": address}
    with httpx.Client(base_url=identity, headers=headers, timeout=60) as client:
        fields = csrf_of(client.get("/login").text)
        start = time.monotonic()
        deadline, n = start + seconds, 0
        while time.monotonic() < deadline:
            if rate:
                due = start + n / rate
                if due >= deadline:
                    break
                time.sleep(max(0.0, due - time.monotonic()))
            n += 1
            data = {**fields, "account": OWNER, "password": f"Guess-{n}-{address}"}
            try:
                counts[str(client.post("/login", data=data).status_code)] += 1
            except httpx.TransportError as exc:
                counts[type(exc).__name__] += 1
    answers.put((dict(counts), time.process_time()))


class Owner:
    """bob in his own browser: the sign-in form's CSRF cookie once, then sign-ins, each from
    an address of his own."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.fields: dict[str, str] = {}
        self.signed_in = 0

    async def sign_in(self) -> tuple[float, int]:
        if not self.fields:
            self.fields = csrf_of((await self.client.get("/login")).text)
        data = {**self.fields, "account": OWNER, "password": OWNER_PASSWORD}
        self.signed_in += 1
        address = {"X-Forwarded-For": f"203.0.113.{self.signed_in}"}
        start = time.perf_counter()
        answer = await self.client.post("/login", data=data, headers=address)
        return time.perf_counter() - start, answer.status_code


async def read_me(member: httpx.AsyncClient) -> float:
    start = time.perf_counter()
    answer = await member.get("/sso/me")
    assert answer.status_code == 200, answer.text[:300]
    return time.perf_counter() - start


async def rounds(
    member: httpx.AsyncClient, owner: Owner, until: float, most: int
) -> dict[str, Any]:
    """Rounds of reads then one sign-in, `most` of them or until `until` (monotonic)."""
    reads: list[float] = []
    sign_ins: list[float] = []
    answered: Counter[int] = Counter()
    for _ in range(most):
        if time.monotonic() >= until:
            break
        for _ in range(ROUND_READS):
            reads.append(await read_me(member))
            await asyncio.sleep(READ_PAUSE)
        took, status = await owner.sign_in()
        sign_ins.append(took)
        answered[status] += 1
    return {"reads": reads, "sign_ins": sign_ins, "ok": answered[303], "answered": answered}


async def bench(url: str, key_file: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = {"IDENTITY_LOG_LEVEL": "WARNING"}
    async with running_stack(url, key_file, world(), identity_env=env) as stack:
        await stack.provision("acme")
        await give_owner_a_password(url, stack)
        alice = stack.browser()
        try:
            await alice.flow_b("acme", "alice@acme", "alice-pw")
            cookies = {"identity_session": alice.cookie("identity_session") or ""}
        finally:
            await alice.close()
        async with (
            httpx.AsyncClient(base_url=stack.identity, cookies=cookies, timeout=60) as member,
            httpx.AsyncClient(base_url=stack.identity, timeout=60) as bob,
        ):
            owner = Owner(bob)
            await read_me(member)  # warm up
            idle = await rounds(member, owner, time.monotonic() + 3600, IDLE_ROUNDS)
            flood = await flood_phase(stack, member, owner, args)
    return figures(idle, flood, args)


async def flood_phase(
    stack: Stack, member: httpx.AsyncClient, owner: Owner, args: argparse.Namespace
) -> dict[str, Any]:
    """The rounds while the attackers post; also the CPU time identity and they used."""
    ctx = multiprocessing.get_context("spawn")
    answers = ctx.Queue()
    procs = [
        ctx.Process(
            target=attacker,
            args=(stack.identity, f"198.51.100.{n + 1}", args.seconds, args.rate, answers),
        )
        for n in range(args.attackers)
    ]
    identity_pid = stack.processes[0].processes[0].pid
    cpu_before = cpu_seconds(identity_pid)
    for p in procs:
        p.start()
    await asyncio.sleep(1)  # the attackers' interpreters start
    flood = await rounds(member, owner, time.monotonic() + args.seconds - 1, 10**6)
    flood["identity_cpu_s"] = cpu_seconds(identity_pid) - cpu_before
    counts: Counter[str] = Counter()
    flood["attackers_cpu_s"] = 0.0
    for _ in procs:
        answered, cpu = await asyncio.to_thread(answers.get, True, args.seconds + 120)
        counts.update(answered)
        flood["attackers_cpu_s"] += cpu
    for p in procs:
        p.join(timeout=30)
    flood["counts"] = counts
    return flood


def figures(
    idle: dict[str, Any], flood: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    def ms(values: list[float]) -> float:
        return round(statistics.median(values) * 1000, 1)

    counts: Counter[str] = flood["counts"]
    return {
        "attackers": args.attackers,
        "seconds": args.seconds,
        "rate_per_attacker": args.rate,
        "idle_me_p50_ms": ms(idle["reads"]),
        "flood_me_p50_ms": ms(flood["reads"]),
        "me_ratio": round(ms(flood["reads"]) / ms(idle["reads"]), 2),
        "idle_login_p50_ms": ms(idle["sign_ins"]),
        "flood_login_p50_ms": ms(flood["sign_ins"]),
        "login_ratio": round(ms(flood["sign_ins"]) / ms(idle["sign_ins"]), 2),
        "owner_signed_in_idle": f"{idle['ok']}/{len(idle['sign_ins'])}",
        "owner_signed_in_flood": f"{flood['ok']}/{len(flood['sign_ins'])}",
        "owner_answers_flood": {str(k): v for k, v in sorted(flood["answered"].items())},
        "attack_tries": sum(counts.values()),
        "attack_tries_per_s": round(sum(counts.values()) / args.seconds, 1),
        "attack_answers": dict(sorted(counts.items())),
        "flood_identity_cpu_s": round(flood["identity_cpu_s"], 1),
        "flood_attackers_cpu_s": round(flood["attackers_cpu_s"], 1),
    }


def print_table(r: dict[str, Any]) -> None:
    head = ("phase", "/sso/me p50", "/login p50", "owner in")
    rows = [
        ("idle", r["idle_me_p50_ms"], r["idle_login_p50_ms"], r["owner_signed_in_idle"]),
        ("flood", r["flood_me_p50_ms"], r["flood_login_p50_ms"], r["owner_signed_in_flood"]),
        ("ratio", f"{r['me_ratio']} (<=2)", r["login_ratio"], ""),
    ]
    print("  ".join(f"{h:>12}" for h in head))
    for row in rows:
        print("  ".join(f"{v!s:>12}" for v in row))
    print(
        f"{r['attackers']} attackers (at most {r['rate_per_attacker'] or 'unpaced'}/s each), "
        f"{r['attack_tries']} tries in {r['seconds']} s "
        f"({r['attack_tries_per_s']}/s), answered {r['attack_answers']}; CPU during the flood: "
        f"identity {r['flood_identity_cpu_s']} s, attackers {r['flood_attackers_cpu_s']} s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--database-url", help="the database to use (default: temporary SQLite)")
    parser.add_argument("--attackers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="tries a second per attacker (0: unpaced)"
    )
    result = run_migrated(bench, parser.parse_args(argv))
    print_table(result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
