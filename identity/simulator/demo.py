"""`identity demo`: the service on the embedded SQLite engine and the simulator, ready to use.

Everything lives in one folder (default `./identity-demo`): the SQLite file, the master key,
the marketplace keys and the seller's RSA key, generated on first run and reused afterwards, so a
restarted demo keeps its data; and, written at every start, where its servers listen, so
`identity simulate … --demo-dir` and `identity tenants … --demo-dir` find it (demo_dir.py).
The service, the simulator, the worker (which sends back-channel logouts) and a small example
ISV app (identity/simulator/example_app.py, an OIDC client of identity) run as child processes
of this command, which provisions the built-in scenario (order, enterprise, credentials,
departments, members) through real signed calls and prints where to sign in, and how to drive
it from another terminal. The simulator also serves the buyer's console (docs/simulator-
console.md), where the scenario's buyer creates enterprises and members that identity then
learns of; what the console changes lives in the simulator's memory, so a restarted demo starts
again from the built-in scenario (identity keeps what it was sent). Ctrl-C stops them all.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx2 as httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from sqlalchemy.exc import OperationalError

from identity import demo_dir
from identity.crypto import Cipher
from identity.db import Database
from identity.migrate import upgrade
from identity.provider import clients
from identity.simulator import sender as events
from identity.simulator.authcentre import UNIFIED_LOGIN_PATH
from identity.simulator.cas import LOGIN_PATH as CAS_LOGIN_PATH
from identity.simulator.order_api import DEMO_KEY
from identity.simulator.scenario import Scenario, load_scenario
from identity.simulator.sender import Keys, KooGallery

Echo = Callable[[str], None]


MESSAGES = "messages.jsonl"


def _keys(folder: Path) -> dict[str, str]:
    """The demo's secrets, made once and kept in the folder (mode 0600)."""
    folder.mkdir(parents=True, exist_ok=True)
    pem, stored = folder / demo_dir.PRIVATE_KEY, folder / demo_dir.KEYS
    if not pem.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        pem.touch(mode=0o600)
        pem.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    if not stored.exists():
        stored.touch(mode=0o600)
        names = ("secret", "basic", "kit")
        stored.write_text(json.dumps({n: secrets.token_urlsafe(32) for n in names}))
    keys: dict[str, str] = json.loads(stored.read_text())
    return keys | {"pem": str(pem)}


def _env(folder: Path, identity: str, keys: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    return env | {
        "IDENTITY_DATABASE_URL": demo_dir.database_url(folder),
        "IDENTITY_SECRET_KEY": keys["secret"],
        "IDENTITY_MARKETPLACE_BASIC_KEY": keys["basic"],
        "IDENTITY_MARKETPLACE_KIT_KEY": keys["kit"],
        "IDENTITY_MARKETPLACE_PRIVATE_KEY_FILE": keys["pem"],
        "IDENTITY_BASE_URL": identity,
        "IDENTITY_SESSION_COOKIE_SECURE": "false",  # plain http on 127.0.0.1
        "IDENTITY_ALLOW_LOOPBACK_HTTP": "true",  # the simulator is the auth centre, on loopback
        # http://{tenantCode}.localhost:PORT/: browsers resolve *.localhost to this machine
        "IDENTITY_TENANT_DOMAIN": "*.localhost",
        # Reset codes and initial passwords, as the development sender writes them.
        "IDENTITY_NOTIFY_FILE": str(folder.resolve() / MESSAGES),
    }


def _in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def _stop(_signal: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with code {process.returncode}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become healthy in {timeout:.0f}s")


async def _provision(scenario: Scenario, identity: str, sim: str, keys: dict[str, str]) -> None:
    seller = Keys.from_private_key_pem(keys["basic"], keys["kit"], Path(keys["pem"]).read_bytes())
    async with httpx.AsyncClient(base_url=identity, timeout=30) as client:
        sender = KooGallery(client, seller, app_id=scenario.app_id, auth_centre=sim)
        for tenant in scenario.tenants:
            await events.provision(sender, tenant)


async def _example_client(
    folder: Path, env: dict[str, str], scenario: Scenario, example: str
) -> dict[str, str]:
    """The example app's client at identity, with its secrets (`client_id`, `client_secret`,
    `events_secret`): registered on the first run (kept in the folder, mode 0600), registered
    again if it is gone or its address changed. It reads the directory and receives its
    events, as well as signing members in."""
    stored = folder / demo_dir.EXAMPLE_CLIENT
    db = Database(env["IDENTITY_DATABASE_URL"])
    events_uri = f"{example}/identity-events"
    try:
        async with db.transaction() as session:
            if stored.exists():
                kept: dict[str, str] = json.loads(stored.read_text())
                client = await clients.get(session, kept["client_id"])
                if (
                    client is not None
                    and client.redirect_uris == [f"{example}/callback"]
                    and client.events_uri == events_uri
                    and "events_secret" in kept
                ):
                    return kept
            added = await clients.add(
                session,
                clients.Registration(
                    app_id=scenario.app_id,
                    name="Example ISV app",
                    redirect_uris=[f"{example}/callback"],
                    post_logout_redirect_uris=[f"{example}/"],
                    backchannel_logout_uri=f"{example}/backchannel-logout",
                    initiate_login_uri=None,
                    public=False,
                    scopes=[clients.DIRECTORY_SCOPE],
                    events_uri=events_uri,
                ),
                Cipher(env["IDENTITY_SECRET_KEY"]),
            )
    finally:
        await db.dispose()
    assert added.secret is not None and added.events_secret is not None
    registered = {
        "client_id": added.client_id,
        "client_secret": added.secret,
        "events_secret": added.events_secret,
    }
    stored.touch(mode=0o600)
    stored.write_text(json.dumps(registered))
    return registered


def _program() -> str:
    """`identity` as this demo was started (`.venv/bin/identity` under `make demo`), so the
    banner's commands work when pasted."""
    script = Path(sys.argv[0])
    if script.name != "identity":
        return f"{shlex.quote(sys.executable)} -m identity.cli"
    found = shutil.which("identity")
    if found is not None and Path(found).resolve() == script.resolve():
        return "identity"
    return shlex.quote(sys.argv[0])


def _drive(scenario: Scenario, folder: Path, echo: Echo) -> None:
    """Commands that play the marketplace against this demo from another terminal: without
    --demo-dir when ./identity-demo would be found there (demo_dir.py), else with it."""
    tenant = scenario.tenants[0]
    member = next((m for m in tenant.members if m.enable and m.authorised), tenant.members[0])
    settings = demo_dir.MARKETPLACE_SETTINGS + demo_dir.DATABASE_SETTINGS
    found = folder.resolve() == demo_dir.DEFAULT.resolve() and not demo_dir.configured(settings)
    flag = "" if found else f" --demo-dir {shlex.quote(str(folder.resolve()))}"
    run, code = _program(), tenant.tenant_code
    echo(f"From another terminal in {Path.cwd()} (enable-member and unfreeze undo):")
    echo(f"  {run} simulate disable-member {code} {member.user_name}{flag}")
    echo(f"  {run} simulate freeze {code}{flag}")
    echo(f"  {run} tenants show {code}{flag}")


def tenant_host(identity: str, tenant_code: str) -> str:
    """The demo's tenant host of an enterprise: `http://{code}.localhost:PORT`."""
    return f"http://{tenant_code.lower()}.localhost:{urlsplit(identity).port}"


def _banner(
    scenario: Scenario, folder: Path, identity: str, sim: str, example: str, echo: Echo
) -> None:
    tenant = scenario.tenants[0]
    echo("identity demo is running.")
    echo(f"  Sign in (app-initiated, Flow B): {identity}/sso/login?tenant={tenant.tenant_code}")
    echo(f"  Sign in at the enterprise's own host: {tenant_host(identity, tenant.tenant_code)}/")
    service = f"{identity}/sso/cas/{scenario.app_id}?tenant={tenant.tenant_id}"
    workbench = f"{sim}{CAS_LOGIN_PATH}?service={quote(service, safe='')}"
    echo(f"  Sign in from the enterprise workbench (CAS): {workbench}")
    echo(
        f"  Sign in (unified login, Flow A): {sim}{UNIFIED_LOGIN_PATH}?ind=UNOP&appId="
        f"{scenario.app_id}"
    )
    for member in tenant.members:
        note = (
            ""
            if member.enable and member.authorised
            else ("  (refused: disabled)" if not member.enable else "  (refused: not authorised)")
        )
        echo(
            f"  Account {member.user_name}@{tenant.tenant_code}  password {member.password}"
            f"  role {member.role}{note}"
        )
    admins = [m for m in tenant.members if m.role == "admin" and m.enable and m.authorised]
    if admins:
        account = f"{admins[0].user_name}@{tenant.tenant_code}"
        echo(
            f"  Admin console: {identity}/admin  (enterprise code {tenant.tenant_code}, "
            f"then sign in as {account}, the demo's admin)"
        )
        echo(f"  Password-reset codes and initial passwords: {folder.resolve() / MESSAGES}")
        echo(f"  Sign in with a local password (after a reset): {identity}/login")
    echo(f"  Example ISV app (signs in through identity): {example}/")
    if scenario.buyer is not None:
        buyer = scenario.buyer
        echo(
            f"  Buyer's console (enterprises, departments, members; the marketplace's syncs): "
            f"{sim}/console  account {buyer.account}  password {buyer.password}"
        )
    _drive(scenario, folder, echo)
    echo("Press Ctrl-C to stop.")


def run(folder: Path, host: str, port: int, sim_port: int, app_port: int, echo: Echo) -> None:
    """Start the four processes, provision the demo's enterprise, and keep them running until
    one stops or Ctrl-C."""
    for taken in (p for p in (port, sim_port, app_port) if _in_use(host, p)):
        print(
            f"identity demo: port {taken} on {host} is already in use; choose others with "
            "--port/--sim-port/--app-port (make demo: PORT, SIM_PORT, APP_PORT)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    signal.signal(signal.SIGTERM, _stop)  # `kill -TERM` stops the children too, as Ctrl-C does
    scenario = load_scenario()
    identity, sim = f"http://{host}:{port}", f"http://{host}:{sim_port}"
    example = f"http://{host}:{app_port}"
    try:  # everything the demo keeps in its folder
        keys = _keys(folder)
        env = _env(folder, identity, keys)
        # newInstance reads the order from the simulator's stand-in of the order API.
        env |= {
            "IDENTITY_MARKETPLACE_AK": DEMO_KEY.ak,
            "IDENTITY_MARKETPLACE_SK": DEMO_KEY.sk,
            "IDENTITY_MARKETPLACE_API_URL": sim,
        }
        upgrade(env["IDENTITY_DATABASE_URL"], SecretStr(env["IDENTITY_SECRET_KEY"]))
        demo_dir.write_addresses(folder, identity, sim, example)
        registered = asyncio.run(_example_client(folder, env, scenario, example))
    except (OSError, OperationalError) as exc:
        cause = getattr(exc, "orig", None) or exc
        reason = cause.strerror if isinstance(cause, OSError) else str(cause).splitlines()[0]
        print(
            f"identity demo: cannot keep its state in {folder.resolve()} ({reason}): "
            "choose a writable folder with --dir",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    cli = [sys.executable, "-m", "identity.cli"]
    sim_args = ["--port", str(sim_port), "--identity", identity, "--no-provision"]
    client_id = registered["client_id"]
    app_args = ["--port", str(app_port), "--identity", identity, "--client-id", client_id]
    commands = [
        [*cli, "serve", "--host", host, "--port", str(port)],
        [*cli, "simulate", "serve", "--host", host, *sim_args],
        [*cli, "worker"],
        [*cli, "simulate", "example-app", "--host", host, *app_args],
    ]
    env |= {
        "IDENTITY_BACKCHANNEL_POLL_SECONDS": "1",
        "EXAMPLE_APP_CLIENT_SECRET": registered["client_secret"],
        "EXAMPLE_APP_EVENTS_SECRET": registered["events_secret"],
    }
    children = [subprocess.Popen(argv, env=env) for argv in commands]  # noqa: S603 - our argv
    try:
        _wait_healthy(identity, children[0])
        _wait_healthy(sim, children[1])
        asyncio.run(_provision(scenario, identity, sim, keys))
        _banner(scenario, folder, identity, sim, example, echo)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        for argv, child in zip(commands, children, strict=True):
            if child.returncode is not None:
                echo(f"identity demo: `{' '.join(argv[3:])}` stopped (exit {child.returncode})")
    except KeyboardInterrupt:
        pass
    finally:
        _stop_all(children)


def _stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each child still running, then up to 10 s each before SIGKILL."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
