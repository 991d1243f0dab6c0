"""A tenant's auth centre that fails: each kind of failure is told apart in the member's page,
the logs' reason and the metrics, and creates nothing.

The auth centre here is a small real HTTP server (or a socket that never answers, or a closed
port) standing in for the outside world; identity runs in-process over ASGI.
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import func, select, update

from identity.db import Database, utcnow
from identity.models import MemberSession, SessionApp
from identity.settings import Settings
from tests.helpers.auth_centres import (
    CALLBACK,
    INFO,
    OK,
    TENANT,
    TOKEN,
    auth_centre,
    canned_auth_centre,
    drip,
    huge,
    identity_with,
    provision,
    silent_auth_centre,
)
from tests.helpers.servers import METRICS_AUTH, free_port


@pytest.fixture
async def identity(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with identity_with(settings, upstream_timeout_seconds=0.5) as client:
        yield client


async def callback(identity: httpx.AsyncClient) -> httpx.Response:
    return await identity.get(CALLBACK, params={"code": "a-code", "tenant": TENANT})


def metric(call: str, kind: str) -> str:
    return f'identity_sso_upstream_errors_total{{call="{call}",kind="{kind}"}} 1.0'


async def sessions(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(MemberSession)) or 0)


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
    with silent_auth_centre() as silent:
        await provision(identity, private_key_file, silent.url)
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
    """The default settings (HTTPS deployments): the session cookie is Secure, HttpOnly, Lax,
    and named with the `__Host-` prefix (Secure, Path=/, no Domain: no subdomain can set it)."""
    with canned_auth_centre(OK, INFO) as domain:
        await provision(identity, private_key_file, domain)
        landed = await callback(identity)
    assert landed.status_code == 303, landed.text
    (cookie,) = [c for c in landed.headers.get_list("set-cookie") if "identity_session=" in c]
    assert cookie.startswith("__Host-identity_session=")
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"secure", "httponly", "samesite=lax", "path=/"} <= attributes
    assert not any(a.startswith("domain=") for a in attributes)
    assert await sessions(db) == 1
    assert (await identity.get("/sso/session")).json()["userName"] == "alice"


# --- bounds on each call --------------------------------------------------------------------


async def test_a_drip_fed_answer_is_cut_at_the_deadline(
    settings: Settings, db: Database, private_key_file: Path
) -> None:
    """One byte every 0.1 s never trips a per-read timeout; the call's deadline ends it."""
    with auth_centre(respond=drip(every=0.1, total=100)) as server:
        async with identity_with(settings, upstream_timeout_seconds=1.0) as identity:
            await provision(identity, private_key_file, server.url)
            started = time.monotonic()
            page = await callback(identity)
            took = time.monotonic() - started
            metrics = (await identity.get("/metrics", headers=METRICS_AUTH)).text
    assert page.status_code == 504, page.text
    assert '<span id="reason">upstream_timeout</span>' in page.text
    assert 1.0 <= took < 5.0  # the whole answer would take 10 s
    assert metric("token", "timeout") in metrics
    assert await sessions(db) == 0


async def test_a_huge_answer_is_refused_without_reading_it(
    identity: httpx.AsyncClient, db: Database, private_key_file: Path
) -> None:
    size = 200 * 1024 * 1024
    with auth_centre(respond=huge(size)) as server:
        await provision(identity, private_key_file, server.url)
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        page = await callback(identity)
        peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert page.status_code == 502, page.text
    assert '<span id="reason">upstream_error</span>' in page.text
    metrics = (await identity.get("/metrics", headers=METRICS_AUTH)).text
    assert metric("token", "bad_response") in metrics
    assert peak_after - peak_before < 32 * 1024
    assert server.script.sent_bytes < size // 10  # identity hung up early
    assert await sessions(db) == 0


# --- one breaker per auth centre ------------------------------------------------------------

BREAKER = {"upstream_breaker_failures": 3, "upstream_breaker_cooldown_seconds": 0.5}
INVALID_GRANT = (400, '{"error":"invalid_grant","error_description":"Invalid authorization code"}')


def reason(page: httpx.Response) -> str:
    return page.text.split('<span id="reason">')[1].split("<")[0]


async def test_the_breaker_opens_after_transient_failures_and_fails_fast(
    settings: Settings, db: Database, private_key_file: Path
) -> None:
    with auth_centre((503, "busy"), INFO) as server:
        async with identity_with(settings, **BREAKER) as identity:
            await provision(identity, private_key_file, server.url)
            for _ in range(3):
                assert reason(await callback(identity)) == "upstream_error"
            assert server.script.requests == 3
            # Open: refused at once, the auth centre is not called.
            page = await callback(identity)
            assert page.status_code == 503
            assert reason(page) == "upstream_unavailable"
            assert "认证中心多次无响应" in page.text and "paused" in page.text
            assert page.headers["retry-after"] == "1"
            assert server.script.requests == 3
            metrics = (await identity.get("/metrics", headers=METRICS_AUTH)).text
            assert metric("token", "unavailable") in metrics
            assert 'identity_sso_logins_total{outcome="upstream_unavailable"} 1.0' in metrics
            # After the cool-down one trial goes through; it succeeds and closes the breaker.
            server.script.token = OK
            await asyncio.sleep(0.6)
            assert (await callback(identity)).status_code == 303
            assert (await callback(identity)).status_code == 303
            assert server.script.requests == 3 + 4  # token and userinfo, twice
    assert await sessions(db) == 1


async def test_a_failed_trial_opens_the_breaker_again(
    settings: Settings, db: Database, private_key_file: Path
) -> None:
    with auth_centre((502, ""), INFO) as server:
        async with identity_with(settings, **BREAKER) as identity:
            await provision(identity, private_key_file, server.url)
            for _ in range(3):
                await callback(identity)
            await asyncio.sleep(0.6)
            assert reason(await callback(identity)) == "upstream_error"  # the trial
            assert reason(await callback(identity)) == "upstream_unavailable"
            assert server.script.requests == 4


async def test_made_up_codes_never_open_the_breaker(
    settings: Settings, db: Database, private_key_file: Path
) -> None:
    """Anyone can make the auth centre answer invalid_grant; that must not shut a tenant out."""
    with auth_centre(INVALID_GRANT, INFO) as server:
        async with identity_with(settings, **BREAKER) as identity:
            await provision(identity, private_key_file, server.url)
            for _ in range(10):
                assert reason(await callback(identity)) == "code_invalid"
            server.script.token = OK
            assert (await callback(identity)).status_code == 303
            assert server.script.requests == 12


async def test_an_open_breaker_does_not_sign_members_out(
    settings: Settings, db: Database, private_key_file: Path
) -> None:
    """A renewal refused by an open breaker is transient: the session stays while its token
    is valid, as for a timeout."""
    changes = {
        "upstream_breaker_failures": 1,
        "upstream_timeout_seconds": 0.2,
        "token_renew_retry_seconds": 0.1,
    }
    with auth_centre(OK, INFO) as server:
        async with identity_with(settings, **changes) as identity:
            await provision(identity, private_key_file, server.url)
            assert (await callback(identity)).status_code == 303
            async with db.transaction() as session:
                soon = utcnow() + timedelta(seconds=60)  # within the renewal margin
                await session.execute(update(SessionApp).values(token_expires_at=soon))
            server.script.token = (503, "")
            assert (await identity.get("/sso/session")).status_code == 200  # 5xx: breaker opens
            await asyncio.sleep(1.3)  # the renewal lease: max(retry, deadline + 1 s)
            assert (await identity.get("/sso/session")).status_code == 200  # breaker open
            metrics = (await identity.get("/metrics", headers=METRICS_AUTH)).text
    assert 'identity_sso_token_renewals_total{outcome="unavailable"} 1.0' in metrics
    assert server.script.requests == 3  # token, userinfo, one renewal
