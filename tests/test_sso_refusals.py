"""Refused logins end to end: identity and the simulator as separate processes over real HTTP.

Every refusal is the bilingual page naming its reason code, with a 4xx/5xx status, and leaves
nothing behind: no session row, no Huawei user id recorded (contract §5.2 step 7, §3.3).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
from sqlalchemy import func, select

from identity.db import Database
from identity.models import Member, MemberSession
from identity.simulator import sender as events
from identity.simulator.scenario import TenantSpec
from identity.simulator.sender import KooGallery
from tests.helpers.simulator_world import world
from tests.helpers.stack import Browser, Stack, assert_refused, running_stack

ACME_ID = "t-acme-0001"
BETA_ID = "t-beta-0002"


# --- what a refusal must leave behind: nothing ----------------------------------------------


async def sessions_count(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(MemberSession)) or 0)


async def huawei_id(db: Database, user_name: str, tenant_id: str = ACME_ID) -> str | None:
    async with db.read() as session:
        return await session.scalar(
            select(Member.huawei_user_id).where(
                Member.tenant_id == tenant_id, Member.user_name == user_name
            )
        )


async def member_exists(db: Database, user_name: str, tenant_id: str = ACME_ID) -> bool:
    async with db.read() as session:
        found = await session.scalar(
            select(func.count())
            .select_from(Member)
            .where(Member.tenant_id == tenant_id, Member.user_name == user_name)
        )
    return bool(found)


async def assert_nothing_created(db: Database, user_name: str | None = None) -> None:
    assert await sessions_count(db) == 0
    if user_name is not None:
        assert await huawei_id(db, user_name) is None


def with_query(url: str, **changes: str | None) -> str:
    """`url` with query parameters replaced (a value of None drops the parameter)."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def callback(stack: Stack, **query: str) -> str:
    return f"{stack.identity}/sso/callback/{stack.scenario.app_id}?{urlencode(query)}"


# --- Flow B state ---------------------------------------------------------------------------


async def test_flow_b_login_cookie_is_scoped_and_http_only(acme: Stack, browser: Browser) -> None:
    start = await browser.http.get(acme.identity + "/sso/login", params={"tenant": "acme"})
    assert start.status_code == 302
    assert start.headers["location"].startswith(acme.sim + "/api/v1/oauth2/authorize?")
    cookie = start.headers["set-cookie"].lower()
    assert cookie.startswith("identity_login=")
    for attribute in ("httponly", "path=/sso", "samesite=lax", "max-age=600"):
        assert attribute in cookie


async def test_wrong_state_is_refused_before_the_code_is_used(
    acme: Stack, browser: Browser, db: Database
) -> None:
    target = await browser.flow_b_callback("acme", "alice@acme", "alice-pw")
    before = (await acme.sim_stats())["grants"].get("authorization_code", 0)
    landed = await browser.get(with_query(target, state="0" * 32))
    assert_refused(landed, "state_mismatch")
    assert (await acme.sim_stats())["grants"].get("authorization_code", 0) == before
    await assert_nothing_created(db, "alice")
    # A callback that does not carry the login's own state leaves the login alone ...
    assert browser.cookie("identity_login") is not None
    landed = await browser.get(target)
    assert landed.status_code == 200, landed.text
    # ... and the login's own callback ends it.
    assert browser.cookie("identity_login") is None


async def test_stateless_callbacks_cannot_wear_flow_b_down(
    acme: Stack, browser: Browser, db: Database
) -> None:
    """An attacker makes the victim's browser, in the middle of a Flow B login, open the
    attacker's own Flow A callback twice: the first refusal must not lift the protection for
    the second, and the victim's login still completes afterwards."""
    attacker = acme.browser()
    try:
        attackers_query = await attacker.code_for("bob@acme", "bob-pw")
    finally:
        await attacker.close()
    target = await browser.flow_b_callback("acme", "alice@acme", "alice-pw")
    for _ in range(2):
        assert_refused(await browser.get(callback(acme, **attackers_query)), "state_mismatch")
        assert browser.cookie("identity_login") is not None
    await assert_nothing_created(db, "bob")
    landed = await browser.get(target)
    assert landed.status_code == 200, landed.text
    assert (await browser.session()).json()["userName"] == "alice"
    assert browser.cookie("identity_login") is None


async def test_a_refusal_after_the_state_matched_ends_the_flow_b_login(
    acme: Stack, browser: Browser, db: Database
) -> None:
    """The login's own callback ends the login whatever its outcome, so a member refused in
    Flow B can use the unified login (Flow A) right away."""
    target = await browser.flow_b_callback("acme", "carol@acme", "carol-pw")
    assert_refused(await browser.get(target), "member_disabled")
    assert browser.cookie("identity_login") is None
    await events.enable_member(acme.sender, acme.tenant("acme"), "carol")
    landed = await browser.flow_a("carol@acme", "carol-pw")
    assert landed.status_code == 200, landed.text


async def test_callback_without_the_login_cookie_is_refused(
    acme: Stack, browser: Browser, db: Database
) -> None:
    target = await browser.flow_b_callback("acme", "alice@acme", "alice-pw")
    browser.http.cookies.delete("identity_login")
    assert_refused(await browser.get(target), "state_mismatch")
    await assert_nothing_created(db, "alice")


async def test_state_from_another_browser_is_refused(
    acme: Stack, browser: Browser, db: Database
) -> None:
    """Login CSRF: the attacker's code and state, opened in a victim's browser that started
    a login of its own, must not sign the victim in as the attacker."""
    victim = acme.browser()
    try:
        await victim.http.get(acme.identity + "/sso/login", params={"tenant": "acme"})
        assert victim.cookie("identity_login")
        attackers_callback = await browser.flow_b_callback("acme", "bob@acme", "bob-pw")
        assert_refused(await victim.get(attackers_callback), "state_mismatch")
    finally:
        await victim.close()
    await assert_nothing_created(db, "bob")
    # ... while the callback in the browser that started it works.
    landed = await browser.get(attackers_callback)
    assert landed.status_code == 200, landed.text
    assert (await browser.session()).json()["userName"] == "bob"


async def test_stripping_the_state_does_not_turn_flow_b_into_flow_a(
    acme: Stack, browser: Browser, db: Database
) -> None:
    """A browser in the middle of its own Flow B login is not signed in by a callback whose
    state was removed (Flow A's shape), so the state check cannot be sidestepped."""
    victim = acme.browser()
    try:
        await victim.http.get(acme.identity + "/sso/login", params={"tenant": "acme"})
        attackers_callback = await browser.flow_b_callback("acme", "bob@acme", "bob-pw")
        stripped = with_query(attackers_callback, state=None, tenant=ACME_ID)
        assert_refused(await victim.get(stripped), "state_mismatch")
        assert (await victim.session()).status_code == 401
    finally:
        await victim.close()
    await assert_nothing_created(db, "bob")


async def test_the_state_cannot_be_moved_to_another_tenant(
    stack: Stack, db: Database, browser: Browser
) -> None:
    stack.reset()
    await stack.provision("acme")
    await stack.provision("beta")
    target = await browser.flow_b_callback("acme", "alice@acme", "alice-pw")
    assert_refused(await browser.get(with_query(target, tenant=BETA_ID)), "state_mismatch")
    await assert_nothing_created(db, "alice")


# --- the code -------------------------------------------------------------------------------


async def test_a_replayed_code_is_refused_and_makes_no_second_session(
    acme: Stack, browser: Browser, db: Database
) -> None:
    query = await browser.code_for("bob@acme", "bob-pw")
    first = await browser.get(callback(acme, **query))
    assert first.status_code == 200, first.text
    assert await sessions_count(db) == 1
    errors = await acme.metric(
        "identity_sso_upstream_errors_total", call="token", kind="invalid_grant"
    )
    replayer = acme.browser()
    try:
        assert_refused(await replayer.get(callback(acme, **query)), "code_invalid")
        assert replayer.cookie("identity_session") is None
    finally:
        await replayer.close()
    # The same browser replaying its own code keeps its session and gets no second one.
    assert_refused(await browser.get(callback(acme, **query)), "code_invalid")
    assert await sessions_count(db) == 1
    assert (await browser.session()).status_code == 200
    after = await acme.metric(
        "identity_sso_upstream_errors_total", call="token", kind="invalid_grant"
    )
    assert after == errors + 2


async def test_a_made_up_code_is_refused(acme: Stack, browser: Browser, db: Database) -> None:
    assert_refused(
        await browser.get(callback(acme, code="not-a-code", tenant=ACME_ID)), "code_invalid"
    )
    await assert_nothing_created(db)


async def test_callback_without_code_or_tenant_is_refused(
    acme: Stack, browser: Browser, db: Database
) -> None:
    assert_refused(await browser.get(callback(acme, tenant=ACME_ID)), "bad_request")
    assert_refused(await browser.get(callback(acme, code="x")), "bad_request")
    await assert_nothing_created(db)


async def test_an_authorize_error_is_refused(acme: Stack, browser: Browser, db: Database) -> None:
    landed = await browser.get(callback(acme, error="access_denied", state="x"))
    assert_refused(landed, "upstream_denied")
    await assert_nothing_created(db)


# --- tenants --------------------------------------------------------------------------------


async def test_unknown_tenant_is_refused_in_both_flows(
    acme: Stack, browser: Browser, db: Database
) -> None:
    flow_b = await browser.get("/sso/login", params={"tenant": "nobody"})
    assert_refused(flow_b, "tenant_unknown")
    assert len(browser.history) == 1  # never sent to an auth centre
    assert browser.cookie("identity_login") is None
    before = await acme.sim_stats()
    flow_a = await browser.get(callback(acme, code="anything", tenant="t-nobody"))
    assert_refused(flow_a, "tenant_unknown")
    assert await acme.sim_stats() == before  # no token call for an unknown tenant
    await assert_nothing_created(db)


async def test_a_tenant_without_an_app_credential_is_refused(
    stack: Stack, db: Database, browser: Browser
) -> None:
    """A tenant bound, but with no applicationSync for the app yet."""
    stack.reset()
    tenant = stack.tenant("acme")
    await events.new_instance(stack.sender, tenant)
    await stack.sender.kit(
        "tenantSync",
        {
            "instanceId": await stack.sender.instance_id(tenant),
            "tenantId": tenant.tenant_id,
            "orderId": tenant.order.order_id,
            "tenantCode": tenant.tenant_code,
            "name": tenant.name,
            "domainName": stack.sim,
            "flag": 1,
            "testFlag": 0,
            "timeStamp": stack.sender.sync_time(),
        },
    )
    assert_refused(await browser.get("/sso/login", params={"tenant": "acme"}), "app_not_configured")
    await assert_nothing_created(db)


async def test_mismatched_tenant_is_refused(
    database_url: str, private_key_file: Path, db: Database
) -> None:
    """Beta shares ACME's client (a misconfiguration): a beta member's code, sent to the
    callback as ACME's, is exchanged under ACME's credentials, and userinfo names beta."""
    scenario = world(shared_client=True)
    async with running_stack(database_url, private_key_file, scenario) as shared:
        await shared.provision("acme")
        await shared.provision("beta")
        browser = shared.browser()
        try:
            query = await browser.code_for("alice@beta", "beta-pw")
            assert query["tenant"] == BETA_ID
            landed = await browser.get(callback(shared, code=query["code"], tenant=ACME_ID))
            assert_refused(landed, "tenant_mismatch")
            assert await sessions_count(db) == 0
            assert await huawei_id(db, "alice", ACME_ID) is None
            assert await huawei_id(db, "alice", BETA_ID) is None
            # The exchange itself succeeded: only the tenant check stood in the way.
            assert (await shared.sim_stats())["grants"]["authorization_code"] == 1
            # Untampered, the same member signs in to their own tenant.
            landed = await browser.flow_a("alice@beta", "beta-pw")
            assert landed.status_code == 200, landed.text
            assert (await browser.session()).json()["tenantId"] == BETA_ID
        finally:
            await browser.close()


# --- members and instances ------------------------------------------------------------------


async def test_a_disabled_member_is_refused(acme: Stack, browser: Browser, db: Database) -> None:
    assert_refused(await browser.flow_a("carol@acme", "carol-pw"), "member_disabled")
    await assert_nothing_created(db, "carol")
    assert await member_exists(db, "carol")


async def test_a_member_never_authorised_is_refused(
    acme: Stack, browser: Browser, db: Database
) -> None:
    """dave has a password at the auth centre but was never sent in authSync."""
    assert_refused(await browser.flow_a("dave@acme", "dave-pw"), "member_unknown")
    await assert_nothing_created(db)
    assert not await member_exists(db, "dave")


Event = Callable[[KooGallery, TenantSpec], Awaitable[object]]


def _member_event(operation: Callable[[KooGallery, TenantSpec, str], Awaitable[object]]) -> Event:
    return lambda sender, tenant: operation(sender, tenant, "bob")


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        pytest.param(_member_event(events.disable_member), "member_disabled", id="disabled"),
        pytest.param(
            _member_event(events.cancel_authorisation), "authorisation_cancelled", id="cancelled"
        ),
        pytest.param(_member_event(events.delete_member), "member_deleted", id="deleted"),
        pytest.param(events.freeze, "instance_inactive", id="frozen"),
        pytest.param(events.release, "instance_inactive", id="released"),
        pytest.param(events.unbind, "tenant_deleted", id="unbound"),
    ],
)
async def test_login_after_deprovisioning_is_refused(
    acme: Stack, browser: Browser, db: Database, event: Event, reason: str
) -> None:
    await event(acme.sender, acme.tenant("acme"))
    before = await acme.metric("identity_sso_logins_total", outcome=reason)
    assert_refused(await browser.flow_a("bob@acme", "bob-pw"), reason)
    await assert_nothing_created(db, "bob")
    assert await acme.metric("identity_sso_logins_total", outcome=reason) == before + 1
    if reason in ("instance_inactive", "tenant_deleted"):
        # Flow B is refused before the member is sent to the auth centre at all.
        b = acme.browser()
        try:
            assert_refused(await b.get("/sso/login", params={"tenant": "acme"}), reason)
            assert len(b.history) == 1
        finally:
            await b.close()


async def test_unfreezing_lets_members_in_again(
    acme: Stack, browser: Browser, db: Database
) -> None:
    tenant = acme.tenant("acme")
    await events.freeze(acme.sender, tenant)
    assert_refused(await browser.flow_a("bob@acme", "bob-pw"), "instance_inactive")
    await events.unfreeze(acme.sender, tenant)
    landed = await browser.flow_a("bob@acme", "bob-pw")
    assert landed.status_code == 200, landed.text


# --- the auth centre failing ----------------------------------------------------------------


async def test_an_auth_centre_outage_is_an_upstream_error(
    acme: Stack, browser: Browser, db: Database
) -> None:
    labels = {"call": "token", "kind": "server_error"}
    before = await acme.metric("identity_sso_upstream_errors_total", **labels)
    query = await browser.code_for("bob@acme", "bob-pw")
    await acme.sim_post("/_sim/fail", status=503, count=1)
    assert_refused(await browser.get(callback(acme, **query)), "upstream_error")
    assert await acme.metric("identity_sso_upstream_errors_total", **labels) == before + 1
    await assert_nothing_created(db, "bob")
    # Over: the member signs in again (the SSO session at the auth centre is still there).
    landed = await browser.flow_a("bob@acme", "bob-pw")
    assert landed.status_code == 200, landed.text


async def test_a_wrong_client_secret_is_told_apart(
    acme: Stack, browser: Browser, db: Database
) -> None:
    """identity holds a secret the auth centre does not accept (§5.5 Bad client credentials)."""
    tenant = acme.tenant("acme")
    wrong = tenant.model_copy(update={"client_secret": "not-the-acme-secret"})
    await events.bind(acme.sender, wrong)
    labels = {"call": "token", "kind": "invalid_client"}
    before = await acme.metric("identity_sso_upstream_errors_total", **labels)
    assert_refused(await browser.flow_a("bob@acme", "bob-pw"), "client_invalid")
    assert await acme.metric("identity_sso_upstream_errors_total", **labels) == before + 1
    await assert_nothing_created(db, "bob")
    assert "not-the-acme-secret" not in acme.identity_output()


# --- no open redirects ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example.com",
        "//evil.example.com/x",
        "/\\evil.example.com",
        "javascript:alert(1)",
        "http://127.0.0.1.evil.example.com/",
    ],
)
async def test_login_refuses_a_next_elsewhere(
    acme: Stack, browser: Browser, db: Database, target: str
) -> None:
    landed = await browser.get("/sso/login", params={"tenant": "acme", "next": target})
    assert_refused(landed, "redirect_not_allowed")
    assert len(browser.history) == 1  # not sent to the auth centre
    assert browser.cookie("identity_login") is None
    await assert_nothing_created(db)


async def test_login_accepts_a_next_on_this_service(acme: Stack, browser: Browser) -> None:
    landed = await browser.flow_b("acme", "bob@acme", "bob-pw", next=acme.identity + "/sso/me?x")
    assert landed.status_code == 200, landed.text
    assert str(landed.url) == acme.identity + "/sso/me?x"
