"""Back-channel logout end to end: an app that received tokens hears, by a signed
`logout_token`, that the member's session ended; while it is down the logout waits and is
retried; with several workers each logout arrives once."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import httpx2 as httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from pydantic import SecretStr
from sqlalchemy import insert, select

from identity.db import Database, utcnow
from identity.models import LogoutDelivery, SigningKey
from identity.provider import clients
from identity.provider.backchannel import deliver_due
from identity.settings import Settings
from identity.simulator import sender as events
from tests.helpers.marketplace_client import SECRET_KEY
from tests.helpers.oidc_app import REDIRECT, App, authorize
from tests.helpers.simulator_world import APP_ID
from tests.helpers.stack import Browser, Stack

ROOT = Path(__file__).resolve().parent.parent
EVENT = "http://schemas.openid.net/event/backchannel-logout"


@dataclass
class Receiver:
    url: str
    tokens: list[str] = field(default_factory=list)
    down: bool = False
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def receiver() -> Iterator[Receiver]:
    """The app's back-channel logout endpoint: records each logout_token; 503 while down."""
    box: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            target = box[0]
            time.sleep(target.delay)
            if not target.down:
                with target.lock:
                    target.tokens += parse_qs(body).get("logout_token", [])
            self.send_response(503 if target.down else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.append(Receiver(f"http://127.0.0.1:{server.server_port}/backchannel"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box[0]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def app_receiver() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


@pytest.fixture
async def logout_app(acme: Stack, db: Database, app_receiver: Receiver) -> AsyncIterator[App]:
    """acme's app registered with a back-channel logout URI (`app_receiver`)."""
    registration = clients.Registration(
        app_id=APP_ID,
        name="App with back-channel logout",
        redirect_uris=[REDIRECT],
        post_logout_redirect_uris=[],
        backchannel_logout_uri=app_receiver.url,
        initiate_login_uri=None,
        public=False,
    )
    async with db.transaction() as session:
        added = await clients.add(session, registration)
        client_id, secret = added.client_id, added.secret
    assert secret is not None
    async with httpx.AsyncClient(timeout=30) as http:
        config = (await http.get(acme.identity + "/.well-known/openid-configuration")).json()
        yield App(client_id, secret, config, http)


def worker_settings(stack: Stack, database_url: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        base_url=stack.identity,
        secret_key=SecretStr(SECRET_KEY),
    )


async def signed_in_app(app: App, browser: Browser) -> dict[str, str]:
    back = await authorize(browser, app)
    answer = await app.post(
        "token_endpoint", grant_type="authorization_code", code=back["code"],
        redirect_uri=REDIRECT,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def test_a_disabled_member_is_logged_out_of_the_app_by_back_channel(
    acme: Stack, logout_app: App, browser: Browser, app_receiver: Receiver, db: Database,
    database_url: str,
) -> None:  # fmt: skip
    issued = await signed_in_app(logout_app, browser)
    keys = await logout_app.keys()
    id_claims = jwt.decode(issued["id_token"], keys, algorithms=["ES256"]).claims
    await events.disable_member(acme.sender, acme.tenant("acme"), "alice")
    async with httpx.AsyncClient(timeout=10) as http:
        sent = await deliver_due(db, worker_settings(acme, database_url), http)
    assert sent == {"delivered": 1, "retried": 0, "given_up": 0}
    [token] = app_receiver.tokens
    logout = jwt.decode(token, keys, algorithms=["ES256"])
    assert logout.header["typ"] == "logout+jwt"
    claims = logout.claims
    assert claims["iss"] == acme.identity and claims["aud"] == logout_app.client_id
    assert claims["sid"] == id_claims["sid"] and claims["sub"] == id_claims["sub"]
    assert claims["events"] == {EVENT: {}} and "nonce" not in claims and claims["jti"]
    assert claims["exp"] > claims["iat"]


async def test_an_app_that_was_down_gets_the_logout_later(
    acme: Stack, logout_app: App, browser: Browser, app_receiver: Receiver, db: Database,
    database_url: str,
) -> None:  # fmt: skip
    await signed_in_app(logout_app, browser)
    settings = worker_settings(acme, database_url)
    app_receiver.down = True
    await events.delete_member(acme.sender, acme.tenant("acme"), "alice")
    now = utcnow()
    async with httpx.AsyncClient(timeout=10) as http:
        first = await deliver_due(db, settings, http, now)
        assert first == {"delivered": 0, "retried": 1, "given_up": 0}
        async with db.read() as session:
            due = (await session.scalars(select(LogoutDelivery.next_attempt_at))).one()
        assert timedelta(seconds=10) < due - now <= timedelta(seconds=30)
        assert await deliver_due(db, settings, http, now + timedelta(seconds=5)) == {
            "delivered": 0, "retried": 0, "given_up": 0,
        }  # fmt: skip
        app_receiver.down = False
        later = await deliver_due(db, settings, http, now + timedelta(seconds=31))
    assert later == {"delivered": 1, "retried": 0, "given_up": 0}
    assert len(app_receiver.tokens) == 1


async def test_two_workers_deliver_each_logout_once(
    acme: Stack, logout_app: App, app_receiver: Receiver, db: Database, database_url: str
) -> None:
    """Many logouts due at once, two `identity worker --once` processes on them."""
    now = utcnow()
    async with db.transaction() as session:
        await session.execute(
            insert(LogoutDelivery),
            [
                {"client_id": logout_app.client_id, "uri": app_receiver.url, "sid": f"sid-{n}",
                 "tenant_id": "t-acme-0001", "user_name": "alice", "created_at": now,
                 "attempts": 0, "next_attempt_at": now}
                for n in range(60)
            ],
        )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    env |= {
        "IDENTITY_DATABASE_URL": database_url,
        "IDENTITY_SECRET_KEY": SECRET_KEY,
        "IDENTITY_BASE_URL": acme.identity,
        "PYTHONPATH": str(ROOT),
    }
    argv = [sys.executable, "-m", "identity.cli", "worker", "--once"]
    for _ in range(3):  # each pass sends a batch; a few passes of two workers empty the queue
        workers = [
            asyncio.create_subprocess_exec(*argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
            for _ in range(2)
        ]
        processes = await asyncio.gather(*workers)
        assert [await p.wait() for p in processes] == [0, 0]
    async with db.read() as session:  # the keys as stored (the workers may have made the first)
        published = (await session.scalars(select(SigningKey.public_jwk))).all()
    keys = KeySet.import_key_set({"keys": [json.loads(k) for k in published]})
    sids = [jwt.decode(t, keys, algorithms=["ES256"]).claims["sid"] for t in app_receiver.tokens]
    assert sorted(sids) == sorted(f"sid-{n}" for n in range(60))


async def test_a_slow_app_does_not_get_its_logouts_twice_from_two_workers(
    acme: Stack, logout_app: App, app_receiver: Receiver, db: Database, database_url: str
) -> None:
    """Each send takes 0.6 s and a lease lasts 1.5 s: worker A, sending three logouts one
    after another, still holds each while it sends it, so worker B, starting when A has been
    at it for longer than one lease, sends only what A has not claimed, and nothing twice."""
    now = utcnow()
    async with db.transaction() as session:
        await session.execute(
            insert(LogoutDelivery),
            [
                {"client_id": logout_app.client_id, "uri": app_receiver.url, "sid": f"slow-{n}",
                 "tenant_id": "t-acme-0001", "user_name": "alice", "created_at": now,
                 "attempts": 0, "next_attempt_at": now}
                for n in range(3)
            ],
        )  # fmt: skip
    settings = worker_settings(acme, database_url)
    app_receiver.delay = 0.6
    lease = timedelta(seconds=1.5)
    async with httpx.AsyncClient(timeout=10) as http_a, httpx.AsyncClient(timeout=10) as http_b:
        worker_a = asyncio.create_task(deliver_due(db, settings, http_a, lease=lease))
        await asyncio.sleep(1.6)
        from_b = await deliver_due(db, settings, http_b, lease=lease)
        from_a = await worker_a
    assert from_a["delivered"] + from_b["delivered"] == 3
    assert len(app_receiver.tokens) == 3
