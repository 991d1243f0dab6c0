"""`identity serve --workers 1` against `--workers 2`: the apps' token calls on one machine.

    python -m benchmarks.workers [--rounds 3] [--seconds 5] [--concurrency 16] [--database-url URL]

One database (a temporary SQLite file, or a scratch PostgreSQL database on `--database-url`)
provisioned through the simulator; an app gets a member's tokens through the code flow (as in
benchmarks/peer.py). Then `identity serve --port P --workers N` runs on that database for N = 1
and N = 2 in turn (the order swaps every round), and wrk sends introspection, userinfo and JWKS
requests, `--concurrency` connections each, for `--seconds`. CPU is the sum over the server
process and its workers. Prints a table (requests/s for 1 and 2 workers, the ratio, CPU ms per
request), then one JSON line. No target: it shows how throughput grows with a core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import wrk
from benchmarks.authsync import seller_key_file, sqlite_database
from benchmarks.peer import identity_side, load, signed_in_app
from identity.migrate import upgrade
from tests.helpers.servers import ServiceProcesses, children, scratch_postgres

OPERATIONS = ("introspection", "userinfo", "jwks")


def tree_cpu_seconds(pid: int) -> float:
    """CPU of `pid` and its children (the workers)."""
    return wrk.cpu_seconds(pid) + sum(wrk.cpu_seconds(child) for child in children(pid))


async def bench(url: str, key_file: Path, args: argparse.Namespace) -> dict[str, Any]:
    async with signed_in_app(url, key_file) as (stack, app, browser):
        side = identity_side(0, stack.identity, app, browser)
        prepared = {op: await load(side, op, args.concurrency, 1) for op in OPERATIONS}
        runs: dict[str, dict[int, list[dict[str, Any]]]] = {op: {1: [], 2: []} for op in OPERATIONS}
        for round_ in range(args.rounds):
            for count in (1, 2) if round_ % 2 == 0 else (2, 1):
                serving = ServiceProcesses(
                    1,
                    stack.processes[0].env,
                    argv=lambda port, n=count: [
                        *(sys.executable, "-m", "identity.cli", "serve"),
                        *("--port", str(port), "--workers", str(n)),
                    ],
                )
                with serving:
                    base, pid = serving.urls[0], serving.processes[0].pid
                    for op, (endpoint, load_env) in prepared.items():
                        target = base + endpoint.removeprefix(stack.identity)
                        before = tree_cpu_seconds(pid)
                        figures = await asyncio.to_thread(
                            wrk.run, target, load_env, args.concurrency, args.seconds, 1
                        )
                        figures["cpu_s"] = tree_cpu_seconds(pid) - before
                        runs[op][count].append(figures)
    result = {}
    for op, by_count in runs.items():
        row = {}
        for count, figures in by_count.items():
            requests = sum(f["requests"] for f in figures)
            row[count] = {
                "per_s": round(
                    statistics.median(f["requests"] / (f["duration_us"] / 1e6) for f in figures)
                ),
                "cpu_ms_per_request": round(1000 * sum(f["cpu_s"] for f in figures) / requests, 3),
                "errors": sum(f["status_errors"] + f["socket_errors"] for f in figures),
            }
        result[op] = {"workers_1": row[1], "workers_2": row[2],
                      "ratio": round(row[2]["per_s"] / row[1]["per_s"], 2)}  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database-url", help="a PostgreSQL server for a scratch database")
    args = parser.parse_args(argv)
    if not wrk.installed():
        print("benchmarks.workers: wrk is not installed (make peer)")
        return 2
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="identity-bench-") as tmp:
        key_file = seller_key_file(Path(tmp))
        if args.database_url:
            with scratch_postgres(args.database_url, "identity_bench") as url:
                upgrade(url)
                result = asyncio.run(bench(url, key_file, args))
        else:
            with sqlite_database() as url:
                upgrade(url)
                result = asyncio.run(bench(url, key_file, args))
    print(f"{'operation':<15}{'1 worker/s':>12}{'2 workers/s':>13}{'ratio':>8}{'CPU ms 1 / 2':>16}")
    for op, row in result.items():
        one, two = row["workers_1"], row["workers_2"]
        cpu = f"{one['cpu_ms_per_request']} / {two['cpu_ms_per_request']}"
        print(f"{op:<15}{one['per_s']:>12}{two['per_s']:>13}{row['ratio']:>8}{cpu:>16}")
    load = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps({"concurrency": args.concurrency, "rounds": args.rounds,
                      "load_average": load, "operations": result}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
