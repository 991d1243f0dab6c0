"""A tenant's auth centre that fails: each kind of failure is told apart in the member's page,
the logs' reason and the metrics, and creates nothing.

The auth centre here is a small real HTTP server (or a socket that never answers, or a closed
port) standing in for the outside world; identity runs in-process over ASGI.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import func, select

from identity.app import create_app
from identity.db import Database
from identity.models import Session as MemberSession
from identity.settings import Settings
from identity.simulator import sender as events
from identity.simulator.sender import Keys, Sender
from tests.marketplace_client import BASIC_KEY, KIT_KEY
from tests.servers import METRICS_AUTH, free_port
from tests.simulator_world import APP_ID, world

TENANT = "t-acme-0001"
CALLBACK = f"/sso/callback/{APP_ID}"
TOKEN = {"access_token": "at-1", "token_type": "Bearer", "expires_in": 7200, "refresh_token": "r"}


@contextmanager
def canned_auth_centre(token: tuple[int, str], userinfo: tuple[int, str]) -> Iterator[str]:
    """Answers the token and userinfo paths with the given (status, body)."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self._answer(*token)

        def do_GET(self) -> None:  # noqa: N802
            self._answer(*userinfo)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent_auth_centre() -> Iterator[str]:
    """Accepts connections (the kernel's backlog does) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
async def identity(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"upstream_timeout_seconds": 0.5}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=settings.base_url) as client:
        yield client
    await app.state.db.dispose()


async def provision(identity: httpx.AsyncClient, private_key_file: Path, domain: str) -> None:
    keys = Keys.from_private_key_pem(BASIC_KEY, KIT_KEY, private_key_file.read_bytes())
    sender = Sender(identity, keys, app_id=APP_ID, auth_centre=domain)
    await events.provision(sender, world().tenant("acme"))


async def callback(identity: httpx.AsyncClient) -> httpx.Response:
    return await identity.get(CALLBACK, params={"code": "a-code", "tenant": TENANT})


def metric(call: str, kind: str) -> str:
    return f'identity_sso_upstream_errors_total{{call="{call}",kind="{kind}"}} 1.0'


async def sessions(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(MemberSession)) or 0)


OK = (200, json.dumps(TOKEN))
INFO = (200, json.dumps({"userName": "alice", "tenant": TENANT, "id": "x"}))


@pytest.mark.parametrize(
    ("token", "userinfo", "status", "reason", "call", "kind"),
    [
        (
            (400, '{"error":"invalid_grant","error_description":"Invalid authorization code"}'),
            INFO,
            400,
            "code_invalid",
            "token",
            "invalid_grant",
        ),
        (
            (401, '{"error":"invalid_client","error_description":"Bad client credentials"}'),
            INFO,
            502,
            "client_invalid",
            "token",
            "invalid_client",
        ),
        ((403, ""), INFO, 502, "client_invalid", "token", "invalid_client"),
        ((503, "busy"), INFO, 502, "upstream_error", "token", "server_error"),
        ((200, "<html>not json</html>"), INFO, 502, "upstream_error", "token", "bad_response"),
        ((200, '{"token_type":"Bearer"}'), INFO, 502, "upstream_error", "token", "bad_response"),
        (
            (200, json.dumps({**TOKEN, "expires_in": True})),
            INFO,
            502,
            "upstream_error",
            "token",
            "bad_response",
        ),
        (
            (200, json.dumps({**TOKEN, "expires_in": -5})),
            INFO,
            502,
            "upstream_error",
            "token",
            "bad_response",
        ),
        (
            (200, json.dumps({**TOKEN, "expires_in": 10**12})),
            INFO,
            502,
            "upstream_error",
            "token",
            "bad_response",
        ),
        (OK, (401, '{"error":"unauthorized"}'), 502, "upstream_error", "userinfo", "unauthorized"),
        (OK, (500, ""), 502, "upstream_error", "userinfo", "server_error"),
        (OK, (200, '{"name":"no userName"}'), 502, "upstream_error", "userinfo", "bad_response"),
    ],
)
async def test_each_upstream_failure_is_named(
    identity: httpx.AsyncClient,
    db: Database,
    private_key_file: Path,
    token: tuple[int, str],
    userinfo: tuple[int, str],
    status: int,
    reason: str,
    call: str,
    kind: str,
) -> None:
    with canned_auth_centre(token, userinfo) as domain:
        await provision(identity, private_key_file, domain)
        page = await callback(identity)
    assert page.status_code == status
    assert f'<span id="reason">{reason}</span>' in page.text
    assert "identity_sso_upstream_errors_total" in (
        metrics := (await identity.get("/metrics", headers=METRICS_AUTH)).text
    )
    assert metric(call, kind) in metrics
    assert "identity_session" not in page.headers.get("set-cookie", "")
    assert await sessions(db) == 0


async def test_an_auth_centre_that_never_answers_times_out(
    identity: httpx.AsyncClient, db: Database, private_key_file: Path
) -> None:
    with silent_auth_centre() as domain:
        await provision(identity, private_key_file, domain)
        page = await callback(identity)
    assert page.status_code == 504
    assert '<span id="reason">upstream_timeout</span>' in page.text
    assert "认证中心响应超时" in page.text and "did not answer in time" in page.text
    metrics = (await identity.get("/metrics", headers=METRICS_AUTH)).text
    assert metric("token", "timeout") in metrics
    assert await sessions(db) == 0


async def test_an_unreachable_auth_centre_is_an_upstream_error(
    identity: httpx.AsyncClient, db: Database, private_key_file: Path
) -> None:
    await provision(identity, private_key_file, f"http://127.0.0.1:{free_port()}")
    page = await callback(identity)
    assert page.status_code == 502
    assert '<span id="reason">upstream_error</span>' in page.text
    metrics = (await identity.get("/metrics", headers=METRICS_AUTH)).text
    assert metric("token", "unreachable") in metrics
    assert await sessions(db) == 0


async def test_the_session_cookie_is_secure_by_default(
    identity: httpx.AsyncClient, db: Database, private_key_file: Path
) -> None:
    """The default settings (HTTPS deployments): the session cookie is Secure, HttpOnly, Lax."""
    with canned_auth_centre(OK, INFO) as domain:
        await provision(identity, private_key_file, domain)
        landed = await callback(identity)
    assert landed.status_code == 303, landed.text
    (cookie,) = [c for c in landed.headers.get_list("set-cookie") if "identity_session=" in c]
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"secure", "httponly", "samesite=lax", "path=/"} <= attributes
    assert await sessions(db) == 1
