"""Member sessions end to end: the cookie, expiry, upstream token renewal, and de-provisioning
while signed in. identity and the simulator run as separate processes over real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode

import httpx2 as httpx
import pytest
from sqlalchemy import func, select

from identity.crypto import Cipher
from identity.db import Database, utcnow
from identity.models import AccessRevocation, MemberSession, SessionApp
from identity.sessions import hash_id
from identity.simulator import sender as events
from identity.simulator.scenario import TenantSpec
from identity.simulator.sender import KooGallery
from tests.helpers.marketplace_client import SECRET_KEY
from tests.helpers.simulator_world import APP_ID, world
from tests.helpers.stack import Browser, Browsers, Stack, running_stack

ACME_ID = "t-acme-0001"
SESSION = "identity_session"


@pytest.fixture(scope="module")
async def short_stack(database_url: str, private_key_file: Path) -> AsyncIterator[Stack]:
    """Sessions that expire after 1 s idle and 3 s in all."""
    env = {"IDENTITY_SESSION_IDLE_SECONDS": "1", "IDENTITY_SESSION_ABSOLUTE_SECONDS": "3"}
    async with running_stack(database_url, private_key_file, world(), identity_env=env) as running:
        yield running


@pytest.fixture(scope="module")
async def renewing_stack(database_url: str, private_key_file: Path) -> AsyncIterator[Stack]:
    """Upstream access tokens of 60 s and a renewal margin of an hour: every use renews. After a
    transient failure the next attempt waits 2 s (the renewal lease)."""
    env = {
        "IDENTITY_TOKEN_RENEW_MARGIN_SECONDS": "3600",
        "IDENTITY_TOKEN_RENEW_RETRY_SECONDS": "2",
        "IDENTITY_UPSTREAM_TIMEOUT_SECONDS": "1",
    }
    async with running_stack(
        database_url,
        private_key_file,
        world(),
        identity_env=env,
        sim_args=["--access-token-seconds", "60"],
    ) as running:
        yield running


async def _provisioned(stack: Stack) -> Stack:
    stack.reset()
    await stack.provision("acme")
    return stack


async def signed_in(stack: Stack, browser: Browser, account: str, password: str) -> str:
    landed = await browser.flow_a(account, password)
    assert landed.status_code == 200, landed.text
    raw = browser.cookie(SESSION)
    assert raw
    return raw


async def row_exists(db: Database, raw_id: str) -> bool:
    async with db.read() as session:
        return await session.get(MemberSession, hash_id(raw_id)) is not None


async def sessions_count(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(MemberSession)) or 0)


async def session_status(stack: Stack, raw_id: str) -> int:
    """`/sso/session` with only this cookie, as a front end would ask."""
    async with httpx.AsyncClient(cookies={SESSION: raw_id}) as client:
        return (await client.get(stack.identity + "/sso/session")).status_code


# --- the cookie -----------------------------------------------------------------------------


async def test_session_cookie_is_http_only_lax_and_site_wide(
    acme: Stack, browsers: Browsers
) -> None:
    browser = browsers(acme)
    await signed_in(acme, browser, "bob@acme", "bob-pw")
    callbacks = [r for r in browser.history if r.url.path.startswith("/sso/callback/")]
    assert len(callbacks) == 1 and callbacks[0].status_code == 303
    cookies = [c for c in callbacks[0].headers.get_list("set-cookie") if c.startswith(SESSION)]
    assert len(cookies) == 1
    attributes = {a.strip().lower() for a in cookies[0].split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/"} <= attributes
    assert not any(a.startswith(("domain=", "max-age=", "expires=")) for a in attributes)


async def test_every_login_gets_a_new_session_id(
    acme: Stack, browsers: Browsers, db: Database
) -> None:
    browser = browsers(acme)
    first = await signed_in(acme, browser, "bob@acme", "bob-pw")
    second = await signed_in(acme, browser, "bob@acme", "bob-pw")  # SSO at the auth centre
    assert second != first
    assert not await row_exists(db, first)
    assert await row_exists(db, second)
    assert await sessions_count(db) == 1
    assert await session_status(acme, first) == 401
    assert await session_status(acme, second) == 200


async def test_an_unknown_session_cookie_is_401_and_cleared(acme: Stack) -> None:
    async with httpx.AsyncClient(cookies={SESSION: "made-up"}) as client:
        answer = await client.get(acme.identity + "/sso/session")
        assert answer.status_code == 401
        assert answer.json()["error"] == "unauthenticated"
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["set-cookie"].startswith(f'{SESSION}="";')
        assert (await client.get(acme.identity + "/sso/me")).status_code == 401


async def test_a_session_in_use_does_not_renew_far_from_token_expiry(
    acme: Stack, browsers: Browsers
) -> None:
    browser = browsers(acme)
    await signed_in(acme, browser, "bob@acme", "bob-pw")
    before = (await acme.sim_stats())["grants"].get("refresh_token", 0)
    for _ in range(3):
        assert (await browser.session()).status_code == 200
    assert (await acme.sim_stats())["grants"].get("refresh_token", 0) == before


# --- expiry ---------------------------------------------------------------------------------


async def _login_moment(db: Database, raw_id: str) -> float:
    """When the service opened the session, on this process's monotonic clock: the timeline
    counts from there, not from when the landing page came back (a loaded machine can take a
    good part of a second between the two)."""
    async with db.read() as session:
        opened = await session.scalar(
            select(MemberSession.authenticated_at).where(MemberSession.id_hash == hash_id(raw_id))
        )
    assert opened is not None
    return time.monotonic() - (utcnow() - opened).total_seconds()


async def _at(start: float, offset: float) -> None:
    await asyncio.sleep(max(0.0, start + offset - time.monotonic()))


async def test_idle_and_absolute_timeouts_end_the_session(
    short_stack: Stack, db: Database, browsers: Browsers
) -> None:
    """Idle 1 s, absolute 3 s, times counted from each member's login.

    `idle` is used at 0.7 s and 1.4 s (past the idle timeout counted from login, so the use at
    0.7 s must have extended it), then left alone until 2.7 s. `busy` is used every 0.8 s and still
    ends at 3.2 s, 0.8 s after its last use: only the absolute timeout explains that."""
    await _provisioned(short_stack)

    async def timeline(account: str, password: str, uses: list[float], ends: float) -> None:
        browser = browsers(short_stack)
        raw_id = await signed_in(short_stack, browser, account, password)
        start = await _login_moment(db, raw_id)
        for offset in uses:
            await _at(start, offset)
            assert (await browser.session()).status_code == 200, (account, offset)
        await _at(start, ends)
        assert (await browser.session()).status_code == 401, account
        assert browser.cookie(SESSION) is None  # the 401 clears the cookie
        assert not await row_exists(db, raw_id)
        assert (await browser.get("/sso/me")).status_code == 401

    await asyncio.gather(
        timeline("alice@acme", "alice-pw", [0.7, 1.4], 2.7),
        timeline("bob@acme", "bob-pw", [0.8, 1.6, 2.4], 3.2),
    )
    assert await sessions_count(db) == 0


# --- renewal (§5.2 step 8) ------------------------------------------------------------------


def _tokens(cipher: Cipher, row: SessionApp) -> tuple[str, str]:
    assert row.access_token_enc and row.refresh_token_enc
    return (
        cipher.decrypt(row.access_token_enc, ("sessions", row.sid, row.app_id, "access")),
        cipher.decrypt(row.refresh_token_enc, ("sessions", row.sid, row.app_id, "refresh")),
    )


async def _stored_tokens(db: Database, raw_id: str) -> tuple[str, str]:
    async with db.read() as session:
        sid = await session.scalar(
            select(MemberSession.sid).where(MemberSession.id_hash == hash_id(raw_id))
        )
        row = await session.get(SessionApp, (sid, APP_ID))
        assert row is not None
        return _tokens(Cipher(SECRET_KEY), row)


async def test_tokens_are_renewed_and_a_refused_renewal_ends_the_session(
    renewing_stack: Stack, db: Database, browsers: Browsers
) -> None:
    stack = await _provisioned(renewing_stack)
    browser = browsers(stack)
    query = await browser.code_for("bob@acme", "bob-pw")
    app_id = stack.scenario.app_id
    answer = await browser.http.get(
        f"{stack.identity}/sso/callback/{app_id}?{urlencode(query)}"
    )  # not following to the landing page, which would renew already
    assert answer.status_code == 303, answer.text
    raw_id = browser.cookie(SESSION)
    assert raw_id
    seen = [await _stored_tokens(db, raw_id)]
    grants = (await stack.sim_stats())["grants"].get("refresh_token", 0)
    renewed = await stack.metric("identity_sso_token_renewals_total", outcome="success")

    for n in (1, 2):  # the second renewal uses the rotated refresh token the first one stored
        described = await browser.session()
        assert described.status_code == 200, described.text
        assert described.json()["userName"] == "bob"
        assert (await stack.sim_stats())["grants"]["refresh_token"] == grants + n
        seen.append(await _stored_tokens(db, raw_id))
        assert seen[-1][0] != seen[-2][0] and seen[-1][1] != seen[-2][1]
    assert await stack.metric("identity_sso_token_renewals_total", outcome="success") == (
        renewed + 2
    )

    # An auth-centre blip while the access token is still valid keeps the member signed in;
    # renewal backs off for the lease (2 s here), then succeeds.
    blips = await stack.metric("identity_sso_token_renewals_total", outcome="server_error")
    await stack.sim_post("/_sim/fail", status=503, count=1)
    assert (await browser.session()).status_code == 200
    assert await stack.metric("identity_sso_token_renewals_total", outcome="server_error") == (
        blips + 1
    )
    assert (await browser.session()).status_code == 200  # backing off: no new attempt
    assert (await stack.sim_stats())["grants"]["refresh_token"] == grants + 2
    await asyncio.sleep(2.1)
    assert (await browser.session()).status_code == 200
    assert (await stack.sim_stats())["grants"]["refresh_token"] == grants + 3
    seen.append(await _stored_tokens(db, raw_id))

    failed = await stack.metric("identity_sso_token_renewals_total", outcome="invalid_grant")
    await stack.sim_post("/_sim/revoke", tenantId=ACME_ID, userName="bob")
    assert (await browser.session()).status_code == 401
    assert not await row_exists(db, raw_id)
    assert browser.cookie(SESSION) is None
    assert await stack.metric("identity_sso_token_renewals_total", outcome="invalid_grant") == (
        failed + 1
    )

    # None of the upstream tokens, the client secret or the password reached identity's logs.
    logs = stack.identity_output()
    assert '"sso.login"' in logs and '"sso.renewal_failed"' in logs  # the logs are there
    secrets = {t for pair in seen for t in pair}
    secrets |= {stack.tenant("acme").client_secret, "bob-pw", query["code"]}
    leaked = [s for s in secrets if s in logs]
    assert not leaked


# --- de-provisioning while signed in ------------------------------------------------------

Event = Callable[[KooGallery, TenantSpec], Awaitable[object]]


def _on_bob(operation: Callable[[KooGallery, TenantSpec, str], Awaitable[object]]) -> Event:
    return lambda sender, tenant: operation(sender, tenant, "bob")


async def _revocations(db: Database) -> set[tuple[object, ...]]:
    """The outbox rows: (reason, member or None for all, sessions ended, id)."""
    columns = (
        AccessRevocation.reason,
        AccessRevocation.user_name,
        AccessRevocation.sessions_ended,
        AccessRevocation.id,
    )
    async with db.read() as session:
        return {tuple(r) for r in (await session.execute(select(*columns))).all()}


@pytest.mark.parametrize(
    ("event", "reason", "whole_tenant"),
    [
        pytest.param(
            _on_bob(events.cancel_authorisation),
            "authorisation_cancelled",
            False,
            id="authSync-flag-3",
        ),
        pytest.param(_on_bob(events.disable_member), "member_disabled", False, id="enable-false"),
        pytest.param(_on_bob(events.delete_member), "member_deleted", False, id="authSync-flag-0"),
        pytest.param(events.freeze, "instance_frozen", True, id="FREEZE"),
        pytest.param(events.release, "instance_released", True, id="releaseInstance"),
        pytest.param(events.unbind, "tenant_deleted", True, id="tenantSync-flag-0"),
    ],
)
async def test_deprovisioning_ends_the_session_at_once(
    acme: Stack,
    db: Database,
    browsers: Browsers,
    event: Event,
    reason: str,
    whole_tenant: bool,
) -> None:
    alice, bob = browsers(acme), browsers(acme)
    alice_id = await signed_in(acme, alice, "alice@acme", "alice-pw")
    bob_id = await signed_in(acme, bob, "bob@acme", "bob-pw")

    before = await _revocations(db)
    await event(acme.sender, acme.tenant("acme"))

    assert not await row_exists(db, bob_id)  # ended by the sync itself, not at the next use
    assert await row_exists(db, alice_id) is not whole_tenant
    # The next request says why, once; a browser without the cookie learns nothing.
    stranger = await browsers(acme).session()
    assert stranger.status_code == 401 and "reason" not in stranger.json()
    told = await bob.session()
    assert told.status_code == 401 and told.json()["reason"] == reason
    again = await bob.session()
    assert again.status_code == 401 and "reason" not in again.json()
    alice_now = await alice.session()
    assert alice_now.status_code == (401 if whole_tenant else 200)
    assert alice_now.json().get("reason") == (reason if whole_tenant else None)
    assert {r[:3] for r in await _revocations(db) - before} == {
        (reason, None, 2) if whole_tenant else (reason, "bob", 1)
    }


async def test_concurrent_requests_renew_once_and_stay_signed_in(
    renewing_stack: Stack, db: Database, browsers: Browsers
) -> None:
    """The auth centre rotates the refresh token at each use: if every request in the renewal
    window renewed, all but one would get invalid_grant and sign the member out."""
    stack = await _provisioned(renewing_stack)
    browser = browsers(stack)
    query = await browser.code_for("bob@acme", "bob-pw")
    answer = await browser.http.get(
        f"{stack.identity}/sso/callback/{stack.scenario.app_id}?{urlencode(query)}"
    )
    assert answer.status_code == 303, answer.text
    raw_id = browser.cookie(SESSION)
    assert raw_id
    for _ in range(5):
        grants = (await stack.sim_stats())["grants"].get("refresh_token", 0)
        answers = await asyncio.gather(*(browser.session() for _ in range(8)))
        assert [a.status_code for a in answers] == [200] * 8
        assert (await stack.sim_stats())["grants"]["refresh_token"] > grants
        assert await row_exists(db, raw_id)
