"""identity side by side with npm's oidc-provider: an app's token calls, each server in one process.

    python -m benchmarks.peer [--rounds 5] [--seconds 5] [--concurrency 8]
        [--refresh-concurrency 8 32] [--database-url URL] [--wrk-threads 1]
        [--only OPERATION ...] [--strict]

identity runs as in the other benchmarks (tests/helpers/stack.py: one service process and the
simulator) on a temporary SQLite file, or on `--database-url`: a SQLite URL is used as it is, a
PostgreSQL URL names a server on which a scratch database `identity_bench_*` is made and dropped.
The peer is npm's `oidc-provider` (benchmarks/node_peer, installed by `make peer`) in one node
process: one confidential client, ES256, refresh tokens rotated at every use, PKCE required, its
default in-memory store. Both get real tokens through the code flow with PKCE: identity's member
signs in at the simulator, the peer's member is signed in by its page-less interaction.

Then, in rounds, each operation runs for `--seconds` against identity and against the peer in
turn (the order swaps every round; round 0 is a one-second warm-up, unmeasured): introspection
of an access token (client_secret_basic), userinfo with it, the refresh grant (every request
spends the refresh token its chain's previous answer returned: one chain per connection, each
from its own code flow, fresh for every run; the peer's each in a new session, as it keeps one
grant per session and client while identity makes one per authorization), the JWKS and the
discovery document. The load is wrk's (Debian's `wrk`; benchmarks/wrk.py and wrk.lua),
`--concurrency` connections (refresh also at each of `--refresh-concurrency`). Each server's CPU
is read from /proc/PID/stat (utime + stime) around each run; the generator's from its rusage.
identity's access tokens are ES256 JWTs checked against the database at every use; the peer's
are opaque keys of its memory store.

Rate: the median over rounds of requests/s; CPU: the rounds' CPU over their requests. Targets,
as ratios identity/peer: introspection and userinfo >= 0.5, refresh >= 0.3, JWKS and discovery
>= 1.0. A missed target is printed as `missed`; the exit status is 1 for one only with
`--strict`. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import httpx2 as httpx

from benchmarks import wrk
from benchmarks.authsync import DEFAULT_POSTGRES, seller_key_file, sqlite_database
from identity.db import Database
from identity.migrate import upgrade
from tests.helpers.oidc_app import REDIRECT, App, authorize, pkce, register
from tests.helpers.servers import free_port, scratch_postgres
from tests.helpers.simulator_world import world
from tests.helpers.stack import Browser, Stack, running_stack
from tests.helpers.waiting import until_sync

NODE_PEER = Path(__file__).resolve().parent / "node_peer"
TARGETS = {"introspection": 0.5, "userinfo": 0.5, "refresh": 0.3, "jwks": 1.0, "discovery": 1.0}
SCOPE = "openid profile email"


@dataclass
class Side:
    """One server as the load sees it: its process, its discovery, its client, fresh tokens."""

    name: str
    pid: int
    discovery_url: str
    config: dict[str, Any]
    client_id: str
    secret: str
    tokens: Callable[[], Awaitable[dict[str, Any]]]

    @property
    def basic(self) -> str:
        pair = f"{quote(self.client_id, safe='')}:{quote(self.secret, safe='')}"
        return "Basic " + base64.b64encode(pair.encode()).decode()


async def load(
    side: Side, operation: str, connections: int, threads: int
) -> tuple[str, dict[str, str]]:
    """The URL and wrk.lua's environment for one operation against one side."""
    config = side.config
    if operation == "introspection":
        token = (await side.tokens())["access_token"]
        env = wrk.fixed("POST", side.basic, f"token={quote(token)}")
        return config["introspection_endpoint"], env
    if operation == "userinfo":
        token = (await side.tokens())["access_token"]
        return config["userinfo_endpoint"], wrk.fixed(authorization=f"Bearer {token}")
    if operation == "refresh":
        chains = [(await side.tokens())["refresh_token"] for _ in range(connections)]
        return config["token_endpoint"], wrk.refreshing(side.basic, chains, threads)
    if operation == "jwks":
        return config["jwks_uri"], wrk.fixed()
    return side.discovery_url, wrk.fixed()


async def still_valid(
    side: Side, operation: str, env: dict[str, str], http: httpx.AsyncClient
) -> None:
    """After a run: the token it used still answers as it did (an expired or revoked one would
    have been measured answering `inactive` or 401)."""
    if operation == "introspection":
        token = env["WRK_BODY"].removeprefix("token=")
        response = await http.post(
            side.config["introspection_endpoint"],
            content=f"token={token}",
            headers={
                "Authorization": side.basic,
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        assert response.json().get("active") is True, (side.name, response.text)
    elif operation == "userinfo":
        response = await http.get(
            side.config["userinfo_endpoint"], headers={"Authorization": env["WRK_AUTHORIZATION"]}
        )
        assert response.status_code == 200, (side.name, response.text)


async def measure(
    side: Side, operation: str, connections: int, args: argparse.Namespace, seconds: int,
    http: httpx.AsyncClient,
) -> dict[str, Any]:  # fmt: skip
    threads = min(args.wrk_threads, connections)
    url, env = await load(side, operation, connections, threads)
    before = wrk.cpu_seconds(side.pid)
    figures = await asyncio.to_thread(wrk.run, url, env, connections, seconds, threads)
    figures["cpu_s"] = wrk.cpu_seconds(side.pid) - before
    await still_valid(side, operation, env, http)
    return dict(figures)


async def code_flow_tokens(
    http: httpx.AsyncClient, config: dict[str, Any], client_id: str, secret: str,
    reach_redirect: Callable[[dict[str, str]], Awaitable[dict[str, str]]],
) -> dict[str, Any]:  # fmt: skip
    """Authorization code with PKCE: `reach_redirect(query)` takes the browser from authorize
    to the app's redirect URI; the code is exchanged at the token endpoint."""
    verifier, challenge = pkce()
    query = {
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
        "scope": SCOPE, "state": "st-1", "nonce": "n-1",
        "code_challenge": challenge, "code_challenge_method": "S256",
    }  # fmt: skip
    back = await reach_redirect(query)
    answer = await http.post(
        config["token_endpoint"],
        data={"grant_type": "authorization_code", "code": back["code"],
              "redirect_uri": REDIRECT, "code_verifier": verifier},
        auth=(client_id, secret),
    )  # fmt: skip
    assert answer.status_code == 200 and "refresh_token" in answer.json(), answer.text
    return answer.json()  # type: ignore[no-any-return]


def identity_side(pid: int, base: str, app: App, browser: Browser) -> Side:
    async def reach(query: dict[str, str]) -> dict[str, str]:
        return await authorize(browser, app, **query)

    async def tokens() -> dict[str, Any]:
        return await code_flow_tokens(app.http, app.config, app.client_id, app.secret, reach)

    discovery = base + "/.well-known/openid-configuration"
    return Side("identity", pid, discovery, app.config, app.client_id, app.secret, tokens)


@contextmanager
def running_peer(client_id: str, secret: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """oidc-provider (benchmarks/node_peer/server.mjs) in one node process, until discovery
    answers; stopped again after."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(  # noqa: S603 - our own argv
            ["node", "server.mjs", str(port), client_id, secret, REDIRECT],  # noqa: S607
            cwd=NODE_PEER,
            env={**os.environ, "NODE_ENV": "production"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def ready() -> bool:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"the peer exited: {log.read().decode(errors='replace')}")
            try:
                return httpx.get(issuer + "/.well-known/openid-configuration").status_code == 200
            except httpx.TransportError:
                return False

        try:
            until_sync(ready, "oidc-provider listening", within=30, every=0.1)
            yield issuer, process
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def peer_side(pid: int, issuer: str, config: dict[str, Any], client_id: str, secret: str,
              browser: httpx.AsyncClient) -> Side:  # fmt: skip
    async def reach(query: dict[str, str]) -> dict[str, str]:
        # authorize → /interaction/UID (signs the member in, grants) → authorize → redirect URI
        response = await browser.get(config["authorization_endpoint"], params=query)
        for _ in range(6):
            location = response.headers.get("location", "")
            if location.startswith(REDIRECT):
                return dict(httpx.URL(location).params)
            assert response.status_code in (302, 303), response.text
            response = await browser.get(urljoin(str(response.url), location))
        raise AssertionError("the peer never sent the browser back to the app")

    async def tokens() -> dict[str, Any]:
        # A new browser each time, so a new session and grant, as identity makes a grant per
        # authorization: the peer keeps one grant per session and client, and the memory
        # store's cost of saving a token grows with the tokens of its grant, so chains sharing
        # one grant for the whole run would slow the peer down round by round.
        browser.cookies.clear()
        return await code_flow_tokens(browser, config, client_id, secret, reach)

    discovery = issuer + "/.well-known/openid-configuration"
    return Side("peer", pid, discovery, config, client_id, secret, tokens)


def operations(args: argparse.Namespace) -> list[tuple[str, str, int]]:
    """(row label, operation, connections) in the order they run."""
    rows = [("introspection", args.concurrency), ("userinfo", args.concurrency)]
    rows += [("refresh", c) for c in args.refresh_concurrency]
    rows += [("jwks", args.concurrency), ("discovery", args.concurrency)]
    return [(f"{op} c={c}", op, c) for op, c in rows if not args.only or op in args.only]


async def rounds(
    sides: list[Side], args: argparse.Namespace, http: httpx.AsyncClient
) -> dict[str, Any]:
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        label: {side.name: [] for side in sides} for label, _, _ in operations(args)
    }
    for round_ in range(args.rounds + 1):  # round 0 warms both up, unmeasured
        seconds = args.seconds if round_ else 1
        order = sides if round_ % 2 == 0 else sides[::-1]
        for label, operation, connections in operations(args):
            for side in order:
                figures = await measure(side, operation, connections, args, seconds, http)
                if round_:
                    runs[label][side.name].append(figures)
    return runs


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    requests = sum(r["requests"] for r in runs)
    return {
        "per_s": round(
            statistics.median(r["requests"] / (r["duration_us"] / 1e6) for r in runs), 1
        ),
        "cpu_ms_per_request": round(1000 * sum(r["cpu_s"] for r in runs) / max(requests, 1), 3),
        "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 2),
        "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 2),
        "errors": sum(r["status_errors"] + r["socket_errors"] for r in runs),
        "generator_cpu_ms_per_request": round(
            1000 * sum(r["generator_cpu_s"] for r in runs) / max(requests, 1), 3
        ),
    }


@asynccontextmanager
async def signed_in_app(url: str, key_file: Path) -> AsyncIterator[tuple[Stack, App, Browser]]:
    """identity and the simulator on `url`, the tenant provisioned, an app registered; the
    member's browser signs in when the app asks for tokens."""
    env = {"IDENTITY_LOG_LEVEL": "WARNING"}
    async with running_stack(url, key_file, world(), identity_env=env) as stack:
        await stack.provision("acme")
        db = Database(url)
        browser = stack.browser()
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                yield stack, await register(stack, db, http), browser
        finally:
            await browser.close()
            await db.dispose()


async def bench(url: str, key_file: Path, args: argparse.Namespace) -> dict[str, Any]:
    # peer_browser: the member's browser at the peer (its cookies, redirects followed by hand)
    async with (
        signed_in_app(url, key_file) as (stack, app, browser),
        httpx.AsyncClient(timeout=30, follow_redirects=False) as peer_browser,
    ):
        identity = identity_side(stack.processes[0].processes[0].pid, stack.identity, app, browser)
        with running_peer("peer-app", "peer-secret-0123456789abcdef") as (issuer, process):
            discovery = issuer + "/.well-known/openid-configuration"
            config = (await app.http.get(discovery)).json()
            peer = peer_side(process.pid, issuer, config, "peer-app",
                             "peer-secret-0123456789abcdef", peer_browser)  # fmt: skip
            runs = await rounds([identity, peer], args, app.http)
    result: dict[str, Any] = {}
    for label, operation, _ in operations(args):
        mine, theirs = summary(runs[label]["identity"]), summary(runs[label]["peer"])
        ratio = round(mine["per_s"] / theirs["per_s"], 2)
        result[label] = {
            "identity": mine, "peer": theirs, "ratio": ratio,
            "target": TARGETS[operation], "met": ratio >= TARGETS[operation],
        }  # fmt: skip
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="identity-bench-") as tmp:
        key_file = seller_key_file(Path(tmp))

        def on(url: str) -> dict[str, Any]:
            upgrade(url)
            return asyncio.run(bench(url, key_file, args))

        if args.database_url and args.database_url.startswith("postgres"):
            with scratch_postgres(args.database_url, "identity_bench") as url:
                return on(url)
        if args.database_url:
            return on(args.database_url)
        with sqlite_database() as url:
            return on(url)


def missing_tools() -> str | None:
    if not shutil.which("node"):
        return "node is not installed"
    if not wrk.installed():
        return "wrk is not installed (make peer)"
    if not (NODE_PEER / "node_modules" / "oidc-provider").is_dir():
        return "oidc-provider is not installed (make peer)"
    return None


def versions() -> dict[str, str]:
    node = subprocess.run(["node", "--version"], capture_output=True, text=True)  # noqa: S607
    package = NODE_PEER / "node_modules" / "oidc-provider" / "package.json"
    return {
        "node": node.stdout.strip(),
        "oidc_provider": json.loads(package.read_text())["version"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5, help="per operation, side and round")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--refresh-concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument(
        "--database-url", help=f"SQLite URL, or a PostgreSQL server ({DEFAULT_POSTGRES})"
    )
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument(
        "--only", nargs="+", choices=sorted(TARGETS), help="measure these operations alone"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if any(c % args.wrk_threads for c in (args.concurrency, *args.refresh_concurrency)):
        parser.error("every concurrency must be a multiple of --wrk-threads")
    if (problem := missing_tools()) is not None:
        print(f"benchmarks.peer: {problem}")
        return 2
    load_before = os.getloadavg()
    started = time.monotonic()
    result = run(args)
    head = ("operation", "identity/s", "CPU ms/req", "peer/s", "CPU ms/req", "ratio", "target")
    print(f"{head[0]:<18}" + "".join(f"{h:>12}" for h in head[1:]))
    for label, row in result.items():
        mine, theirs = row["identity"], row["peer"]
        cells = (mine["per_s"], mine["cpu_ms_per_request"], theirs["per_s"],
                 theirs["cpu_ms_per_request"], row["ratio"])  # fmt: skip
        verdict = f">={row['target']}" + ("" if row["met"] else " missed")
        if mine["errors"] or theirs["errors"]:
            verdict += f" (errors: {mine['errors']} identity, {theirs['errors']} peer)"
        print(f"{label:<18}" + "".join(f"{c:>12}" for c in cells) + f"  {verdict}")
    generator = max(
        side["generator_cpu_ms_per_request"] / side["cpu_ms_per_request"]
        for row in result.values() for side in (row["identity"], row["peer"])
        if side["cpu_ms_per_request"]
    )  # fmt: skip
    print(f"wrk's own CPU: at most {generator:.0%} of the server's, per request")
    missed = [label for label, row in result.items() if not row["met"]]
    figures = {
        "rounds": args.rounds, "seconds": args.seconds, **versions(),
        "database": "postgresql" if (args.database_url or "").startswith("postgres") else "sqlite",
        "load_average": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "took_s": round(time.monotonic() - started), "operations": result, "missed": missed,
    }  # fmt: skip
    print(json.dumps(figures))
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    raise SystemExit(main())
