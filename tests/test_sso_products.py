"""Two products in one tenant (contract §0.4): each app's access follows the instance its
credential and authorisations came with. Freezing, releasing or unbinding one product's
instance ends access to that app only; the other product's members stay signed in."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import httpx2 as httpx
import pytest
from sqlalchemy import func, select

from identity.admin import passwords
from identity.db import Database, utcnow
from identity.models import AccessRevocation, MemberSession
from identity.simulator import sender as events
from identity.simulator.scenario import Order, Scenario, TenantSpec
from identity.simulator.sender import KooGallery
from tests.helpers.simulator_world import login_form, world_data
from tests.helpers.stack import Browser, Stack, assert_refused

APP2 = "second-app"
SESSION = "identity_session"
Event = Callable[[KooGallery, TenantSpec], Awaitable[object]]


@pytest.fixture(scope="module")
def stack_scenario() -> Scenario:
    """The usual world, its auth centre also registering APP2's callback."""
    return Scenario.model_validate({**world_data(), "otherAppIds": [APP2]})


@pytest.fixture
async def two_products(acme: Stack) -> tuple[Stack, KooGallery, TenantSpec]:
    """acme holds demo-app (provisioned by `acme`) and APP2 bought as a second order."""
    second = KooGallery(acme.client, acme.keys, app_id=APP2, auth_centre=acme.sim)
    spec = acme.tenant("acme")
    order = Order(order_id="CS-ACME-0002", order_line_id="CS-ACME-0002-1", business_id="acme-2")
    tenant2 = spec.model_copy(update={"order": order})
    await events.provision(second, tenant2)
    return acme, second, tenant2


async def _revocations(db: Database) -> set[tuple[str, str | None]]:
    async with db.read() as session:
        query = select(AccessRevocation.reason, AccessRevocation.app_id)
        return {(r.reason, r.app_id) for r in (await session.execute(query)).all()}


async def _signed_in(stack: Stack, account: str, app: str) -> Browser:
    browser = stack.browser()
    landed = await browser.flow_b("acme", account, account.split("@")[0] + "-pw", app=app)
    assert landed.status_code == 200, landed.text
    assert (await browser.session()).json()["appId"] == app
    return browser


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        pytest.param(events.freeze, "instance_frozen", id="FREEZE"),
        pytest.param(events.release, "instance_released", id="releaseInstance"),
        pytest.param(events.unbind, "instance_unbound", id="tenantSync-flag-0"),
    ],
)
async def test_ending_one_product_ends_only_its_app(
    two_products: tuple[Stack, KooGallery, TenantSpec], db: Database, event: Event, reason: str
) -> None:
    stack, second, tenant2 = two_products
    on_app2 = await _signed_in(stack, "bob@acme", APP2)
    on_app1 = await _signed_in(stack, "alice@acme", stack.scenario.app_id)
    try:
        before = await _revocations(db)
        await event(second, tenant2)

        assert (await on_app2.session()).status_code == 401
        assert (await on_app1.session()).status_code == 200
        assert await _revocations(db) - before == {(reason, APP2)}

        again = stack.browser()
        refused = await again.flow_b("acme", "bob@acme", "bob-pw", app=APP2)
        assert_refused(refused, "instance_inactive")
        await again.close()
        still = await _signed_in(stack, "bob@acme", stack.scenario.app_id)
        await still.close()
    finally:
        await on_app1.close()
        await on_app2.close()


async def test_unfreezing_restores_the_app(
    two_products: tuple[Stack, KooGallery, TenantSpec],
) -> None:
    stack, second, tenant2 = two_products
    await events.freeze(second, tenant2)
    await events.unfreeze(second, tenant2)
    browser = await _signed_in(stack, "bob@acme", APP2)
    await browser.close()


async def test_one_browser_holds_both_apps_and_loses_only_the_ended_one(
    two_products: tuple[Stack, KooGallery, TenantSpec], db: Database
) -> None:
    """A member who opens the second app stays signed in to the first: one session, two apps.
    Ending the second product ends that app's part of the session only."""
    stack, second, tenant2 = two_products
    browser = await _signed_in(stack, "bob@acme", stack.scenario.app_id)
    try:
        first_cookie = browser.cookie(SESSION)
        landed = await browser.flow_b("acme", "bob@acme", "bob-pw", app=APP2)
        assert landed.status_code == 200, landed.text
        assert browser.cookie(SESSION) != first_cookie  # a new cookie id at every login
        for app in (stack.scenario.app_id, APP2):
            described = await browser.http.get(stack.identity + "/sso/session", params={"app": app})
            assert described.status_code == 200, (app, described.text)
            assert described.json()["appId"] == app
        async with db.read() as session:
            assert await session.scalar(select(func.count()).select_from(MemberSession)) == 1

        await events.freeze(second, tenant2)
        gone = await browser.http.get(stack.identity + "/sso/session", params={"app": APP2})
        assert gone.status_code == 401
        kept = await browser.http.get(
            stack.identity + "/sso/session", params={"app": stack.scenario.app_id}
        )
        assert kept.status_code == 200, kept.text
    finally:
        await browser.close()


async def test_signing_in_as_another_member_ends_the_previous_session(acme: Stack) -> None:
    browser = acme.browser()
    try:
        await browser.flow_a("bob@acme", "bob-pw")
        bob_cookie = browser.cookie(SESSION)
        await browser.http.get(acme.sim + "/api/v1/logout")  # forget bob at the auth centre
        asked = await browser.flow_a("alice@acme", "alice-pw")  # Flow A asks first
        form = login_form(asked.text)
        assert asked.status_code == 200 and form.action == "/sso/continue", asked.text
        landed = await browser.post(form.action, data=form.inputs)
        assert landed.status_code == 200, landed.text
        assert (await browser.session()).json()["userName"] == "alice"
        async with httpx.AsyncClient(cookies={SESSION: bob_cookie or ""}) as old:
            assert (await old.get(acme.identity + "/sso/session")).status_code == 401
    finally:
        await browser.close()


async def test_a_local_sign_in_lets_a_member_of_two_apps_pick_one(
    two_products: tuple[Stack, KooGallery, TenantSpec], db: Database
) -> None:
    """/login with a local password: after the forced change, a member who may use both apps
    picks one, and the session is for that app."""
    stack, _, tenant2 = two_products
    initial, chosen = "Initial-Pass-1", "Kiwi-Orchard-2026"
    async with db.transaction() as session:
        await passwords.store_initial(
            session, tenant2.tenant_id, "bob", await passwords.hash_password(initial), utcnow()
        )
    browser = stack.browser()
    try:
        form = await browser.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf, form.text
        fields = {"csrf": csrf.group(1), "account": "bob@acme", "password": initial}
        changing = await browser.post("/login", data=fields)
        assert changing.status_code == 200 and "/login/change" in changing.text, changing.text
        proof = dict(re.findall(r'name="(\w+)" value="([^"]*)"', changing.text))
        picking = await browser.post(
            "/login/change", data={**proof, "new": chosen, "again": chosen}
        )
        assert picking.status_code == 200 and "/login/app" in picking.text, picking.text
        forms = re.findall(
            r'<form method="post" action="/login/app">(.*?)</form>', picking.text, re.S
        )
        pick = [dict(re.findall(r'name="(\w+)" value="([^"]*)"', f)) for f in forms]
        assert sorted(p["app"] for p in pick) == sorted([stack.scenario.app_id, APP2])
        second = next(p for p in pick if p["app"] == APP2)
        forged = await browser.http.post(
            stack.identity + "/login/app", data={**second, "user": "alice"}
        )
        assert forged.status_code == 401  # the proof names bob
        landed = await browser.post("/login/app", data={**second, "csrf": csrf.group(1)})
        assert landed.status_code == 200, landed.text
        session = (await browser.session()).json()
        assert (session["userName"], session["appId"]) == ("bob", APP2)
    finally:
        await browser.close()
