"""Login end to end: identity and the simulator as separate processes over real HTTP."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
from sqlalchemy import func, select, update

from identity.db import Database
from identity.models import Member, MemberSession
from identity.simulator import sender as events
from identity.simulator.sender import Keys, KooGallery
from tests.helpers.auth_centres import auth_centre
from tests.helpers.marketplace_client import BASIC_KEY, KIT_KEY
from tests.helpers.simulator_world import APP_ID, redirect_query, world
from tests.helpers.stack import Browser, Browsers, Stack, assert_refused

ACME_IDP, BETA_IDP = "https://idp.acme.example.com", "https://idp.beta.example.com"


async def _sessions(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(MemberSession)) or 0)


async def test_flow_b_signs_the_member_in_and_describes_them(
    acme: Stack, browser: Browser, db: Database
) -> None:
    alice = select(Member.huawei_user_id, Member.last_login_at, Member.updated_at).where(
        Member.user_name == "alice"
    )
    async with db.read() as session:
        before = (await session.execute(alice)).one()
    landed = await browser.flow_b("acme", "alice@acme", "alice-pw", next="/sso/me?tab=1")
    assert landed.status_code == 200, landed.text
    assert str(landed.url) == acme.identity + "/sso/me?tab=1"
    assert "Alice 爱丽丝" in landed.text
    described = (await browser.session()).json()
    assert described["tenantId"] == "t-acme-0001"
    assert described["tenantCode"] == "acme"
    assert described["userName"] == "alice"
    assert described["role"] == "admin"
    assert described["orgCode"] == "acme"
    assert described["appId"] == acme.scenario.app_id
    assert await _sessions(db) == 1
    async with db.read() as session:
        after = (await session.execute(alice)).one()
    assert (before.huawei_user_id, before.last_login_at) == (None, None)
    assert after.huawei_user_id  # recorded the first time the member is seen (§5.2 step 7)
    assert after.last_login_at is not None
    assert after.updated_at == before.updated_at  # a sign-in is no change of the directory entry


async def test_the_last_sign_in_is_recorded_at_most_once_a_minute(
    acme: Stack, browsers: Browsers, db: Database
) -> None:
    alice = select(Member.last_login_at).where(Member.user_name == "alice")

    async def sign_in() -> Any:
        landed = await browsers().flow_b("acme", "alice@acme", "alice-pw")
        assert landed.status_code == 200, landed.text
        async with db.read() as session:
            return await session.scalar(alice)

    recorded = await sign_in()
    assert recorded is not None
    assert await sign_in() == recorded  # signed in again in another browser, nothing written
    long_ago = recorded - timedelta(minutes=2)
    async with db.write() as conn:
        await conn.execute(
            update(Member).where(Member.user_name == "alice").values(last_login_at=long_ago)
        )
    assert await sign_in() > long_ago + timedelta(minutes=1)


async def test_flow_a_signs_the_member_in_without_state(acme: Stack, browser: Browser) -> None:
    landed = await browser.flow_a("bob@acme", "bob-pw")
    assert landed.status_code == 200, landed.text
    assert str(landed.url) == acme.identity + "/sso/me"
    assert (await browser.session()).json()["userName"] == "bob"


async def test_an_exact_tenant_id_wins_over_another_tenants_code(
    client: httpx.AsyncClient, private_key_file: Path
) -> None:
    """Beta chose acme's tenant id as its tenantCode (and is the newer of the two): acme's
    members starting at `/sso/login?tenant=t-acme-0001` must still reach acme's auth centre."""
    keys = Keys.from_private_key_pem(BASIC_KEY, KIT_KEY, private_key_file.read_bytes())
    acme, beta = world().tenant("acme"), world().tenant("beta")
    await events.provision(KooGallery(client, keys, app_id=APP_ID, auth_centre=ACME_IDP), acme)
    impostor = beta.model_copy(update={"tenant_code": acme.tenant_id})
    await events.provision(KooGallery(client, keys, app_id=APP_ID, auth_centre=BETA_IDP), impostor)

    async def sent_to(tenant: str) -> tuple[str, str]:
        started = await client.get("/sso/login", params={"tenant": tenant})
        assert started.status_code == 302, started.text
        where, query = redirect_query(started)
        return where.removesuffix("/api/v1/oauth2/authorize"), query["client_id"]

    assert await sent_to(acme.tenant_id) == (ACME_IDP, acme.client_id)
    assert await sent_to(acme.tenant_code) == (ACME_IDP, acme.client_id)
    assert await sent_to(beta.tenant_id) == (BETA_IDP, beta.client_id)


async def test_a_code_two_live_tenants_share_names_neither(
    client: httpx.AsyncClient, private_key_file: Path
) -> None:
    """A second live tenant with acme's code (a persisted seller-side debug sync, say) must not
    take over acme's login by code, newest or not; the tenant id still works."""
    keys = Keys.from_private_key_pem(BASIC_KEY, KIT_KEY, private_key_file.read_bytes())
    acme, beta = world().tenant("acme"), world().tenant("beta")
    await events.provision(KooGallery(client, keys, app_id=APP_ID, auth_centre=ACME_IDP), acme)
    twin = beta.model_copy(update={"tenant_code": acme.tenant_code})
    await events.provision(KooGallery(client, keys, app_id=APP_ID, auth_centre=BETA_IDP), twin)
    refused = await client.get("/sso/login", params={"tenant": acme.tenant_code})
    assert_refused(refused, "tenant_unknown")
    started = await client.get("/sso/login", params={"tenant": acme.tenant_id})
    assert redirect_query(started)[0].startswith(ACME_IDP)


async def test_under_https_both_cookies_carry_the_host_prefix(
    client: httpx.AsyncClient, private_key_file: Path
) -> None:
    """`__Host-` cookies are Secure, Path=/ and have no Domain, so no sibling subdomain or
    plain-http page can set or shadow them; Flow B works through them end to end."""
    keys = Keys.from_private_key_pem(BASIC_KEY, KIT_KEY, private_key_file.read_bytes())
    token = {"access_token": "at", "expires_in": 7200, "refresh_token": "rt"}
    info = {"userName": "alice", "tenant": "t-acme-0001", "id": "h-1"}
    with auth_centre((200, json.dumps(token)), (200, json.dumps(info))) as server:
        sender = KooGallery(client, keys, app_id=APP_ID, auth_centre=server.url)
        await events.provision(sender, world().tenant("acme"))
        started = await client.get("/sso/login", params={"tenant": "acme"})
        assert started.status_code == 302, started.text
        assert cookie_attributes(started, "__Host-identity_login") >= {
            "secure",
            "httponly",
            "path=/",
            "samesite=lax",
        }
        state = redirect_query(started)[1]["state"]
        landed = await client.get(f"/sso/callback/{APP_ID}", params={"code": "c", "state": state})
    assert landed.status_code == 303, landed.text
    assert cookie_attributes(landed, "__Host-identity_session") >= {"secure", "path=/"}
    assert "max-age=0" in cookie_attributes(landed, "__Host-identity_login")  # login ended
    assert (await client.get("/sso/session")).json()["userName"] == "alice"


def cookie_attributes(response: httpx.Response, name: str) -> set[str]:
    (cookie,) = [c for c in response.headers.get_list("set-cookie") if c.startswith(name + "=")]
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert not any(a.startswith("domain") for a in attributes)
    return attributes


async def test_the_enterprise_code_is_matched_in_any_case(
    client: httpx.AsyncClient, private_key_file: Path
) -> None:
    keys = Keys.from_private_key_pem(BASIC_KEY, KIT_KEY, private_key_file.read_bytes())
    acme = world().tenant("acme")
    await events.provision(KooGallery(client, keys, app_id=APP_ID, auth_centre=ACME_IDP), acme)
    started = await client.get("/sso/login", params={"tenant": acme.tenant_code.upper()})
    assert started.status_code == 302, started.text
    assert redirect_query(started)[0].startswith(ACME_IDP)


async def test_a_login_in_a_browser_signed_in_as_another_member_ends_that_session(
    acme: Stack, browser: Browser, db: Database
) -> None:
    await browser.flow_b("acme", "alice@acme", "alice-pw")
    assert (await browser.session()).json()["userName"] == "alice"
    async with db.read() as session:
        (alices,) = (await session.execute(select(MemberSession.sid))).one()

    # "sign in as someone else": the auth centre forgets alice, then Flow B again
    page = await browser.get("/sso/switch", params={"tenant": "acme"})
    landed = await browser.submit_login(page, "bob@acme", "bob-pw")
    assert landed.status_code == 200, landed.text
    assert (await browser.session()).json()["userName"] == "bob"
    async with db.read() as session:
        left = (await session.execute(select(MemberSession.sid, MemberSession.user_name))).all()
    assert [user for _, user in left] == ["bob"] and alices not in {sid for sid, _ in left}
