"""The pages around a login, over real HTTP: a refused member is offered to sign in as someone
else (through the auth centre's logout), a member whose session the marketplace ended is told
why once on the signed-in page, and the signed-in page shows names in the configured time
zone. (The same journey in a real browser: tests/test_browser_journey.py.)"""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from identity.simulator import sender as events
from tests.helpers.simulator_world import world
from tests.helpers.stack import Browser, Stack, assert_refused, running_stack


def _link(page: str, element_id: str) -> str | None:
    found = re.search(rf'id="{element_id}" href="([^"]*)"', page) or re.search(
        rf'href="([^"]*)"[^>]*id="{element_id}"', page
    )
    return html.unescape(found.group(1)) if found else None


def _switch_link(page: str) -> str | None:
    found = re.search(r'href="([^"]*)"[^>]*>[^<]*Sign in as someone else', page)
    return html.unescape(found.group(1)) if found else None


async def test_a_refused_member_can_sign_in_as_someone_else(acme: Stack, browser: Browser) -> None:
    refused = await browser.flow_b("acme", "carol@acme", "carol-pw")  # carol is disabled
    assert_refused(refused, "member_disabled")
    switch = _switch_link(refused.text)
    assert switch is not None and switch.startswith("/sso/switch?")
    assert parse_qs(urlsplit(switch).query)["tenant"] == [acme.tenant("acme").tenant_id]

    # The switch goes through the auth centre's logout, which forgets carol, and comes back to
    # Flow B for the same enterprise: the auth centre asks who is signing in.
    hop = await browser.http.get(acme.identity + switch)
    assert hop.status_code == 303
    login = f"{acme.identity}/sso/login?{urlencode({'tenant': acme.tenant('acme').tenant_id})}"
    assert hop.headers["location"].startswith(f"{acme.sim}/api/v1/logout?")
    assert parse_qs(urlsplit(hop.headers["location"]).query)["redirect_url"][0].startswith(login)
    form = await browser.follow(hop)
    assert 'name="password"' in form.text, form.text
    landed = await browser.submit_login(form, "bob@acme", "bob-pw")
    assert landed.status_code == 200 and "Bob" in landed.text


async def test_only_refusals_of_the_account_offer_another_account(
    acme: Stack, browser: Browser
) -> None:
    unknown = await browser.get("/sso/login", params={"tenant": "no-such-enterprise"})
    assert_refused(unknown, "tenant_unknown")
    assert _switch_link(unknown.text) is None
    assert _link(unknown.text, "home-link") == "/"


async def test_the_switch_refuses_what_a_login_refuses(acme: Stack, browser: Browser) -> None:
    assert_refused(await browser.get("/sso/switch", params={"tenant": "nobody"}), "tenant_unknown")
    outside = {"tenant": "acme", "next": "https://evil.example/"}
    assert_refused(await browser.get("/sso/switch", params=outside), "redirect_not_allowed")
    bare = await browser.http.get(acme.identity + "/sso/switch")
    assert bare.status_code == 303 and bare.headers["location"] == "/sso/login"


async def test_the_signed_in_page_shows_names_and_local_times(
    acme: Stack, browser: Browser
) -> None:
    page = await browser.flow_b("acme", "bob@acme", "bob-pw")
    assert page.status_code == 200, page.text
    spec = acme.tenant("acme")
    department = next(d for d in spec.departments if d.org_code == "acme-web")
    shown = html.unescape(page.text)
    assert spec.name in shown and department.org_name in shown
    assert spec.tenant_id not in shown and "acme-web" not in shown  # codes stay hidden
    assert "成员" in shown and "Member" in shown
    assert "UTC+08:00" in shown  # China Standard Time by default


async def test_the_signed_in_page_says_once_why_the_marketplace_ended_the_session(
    acme: Stack, browser: Browser
) -> None:
    await browser.flow_b("acme", "bob@acme", "bob-pw")
    await events.disable_member(acme.sender, acme.tenant("acme"), "bob")
    told = await browser.get("/sso/me")
    assert told.status_code == 401
    assert "Your account has been disabled by your enterprise" in html.unescape(told.text)
    assert 'id="reason">member_disabled<' in told.text and _switch_link(told.text)
    again = await browser.get("/sso/me")
    assert "You are not signed in" in again.text and "disabled" not in again.text


async def test_the_time_zone_is_configurable(database_url: str, private_key_file: Path) -> None:
    london = {"IDENTITY_TIME_ZONE": "Europe/London"}
    async with running_stack(database_url, private_key_file, world(), identity_env=london) as stack:
        await stack.provision("acme")
        browser = stack.browser()
        page = await browser.flow_b("acme", "bob@acme", "bob-pw")
        await browser.close()
    assert "UTC+00:00" in page.text and "UTC+08:00" not in page.text
