"""The member's journey through identity's pages in headless Chromium, at desktop and phone
widths: a refused member signs in as someone else, finds their enterprise and department by
name, thinks better of signing out, and is told why when the marketplace ends their session;
a signed-in member who opens someone else's unified-login link is asked before switching.

Screenshots of every page go to `$IDENTITY_SCREENSHOTS` when set (to look at them), else to the
test's temporary folder."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin

import httpx2 as httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.helpers.chromium import (
    CHROMIUM,
    FLAGS,
    VIEWPORTS,
    needs_chromium,
    shooter,
    sign_in_at_auth_centre,
)
from tests.helpers.demo_process import identity
from tests.helpers.simulator_world import login_form

pytestmark = needs_chromium


def _simulate(demo: dict[str, str], *args: str) -> None:
    """A marketplace event, from another terminal as the demo's banner says."""
    done = identity(Path(demo["folder"]), "simulate", *args, "--demo-dir", demo["folder"])
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=list(VIEWPORTS))
def test_a_refused_member_signs_in_as_someone_else_and_later_learns_why_they_were_signed_out(
    demo: dict[str, str], viewport: str, tmp_path: Path
) -> None:
    shot = shooter(tmp_path, viewport)
    width, height = VIEWPORTS[viewport]

    tenant = demo["account"].split("@")[1]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(demo["identity"] + "/")
            shot(page, "home")
            page.locator("#sign-in").click()
            expect(page.locator("input[name=tenant]")).to_be_visible()
            shot(page, "enterprise")
            page.fill("input[name=tenant]", tenant.upper())  # any case
            page.get_by_role("button", name=re.compile("Continue")).click()

            # carol is disabled: refused, with a way out.
            sign_in_at_auth_centre(page, f"carol@{tenant}", "carol-demo-password")
            expect(page.locator("#reason")).to_have_text("member_disabled")
            expect(page.locator("#what")).to_contain_text("Your account has been disabled")
            shot(page, "refused")

            # "Sign in as someone else" goes through the auth centre's logout: it asks again
            # instead of signing carol straight back in.
            page.locator("#switch").click()
            expect(page.locator("input[name=password]")).to_be_visible()
            sign_in_at_auth_centre(page, f"bob@{tenant}", "bob-demo-password")

            # Names, not codes; the role in words; times in China Standard Time.
            expect(page.locator("#name")).to_have_text("Bob 鲍勃")
            expect(page.locator("#userName")).to_have_text(f"bob@{tenant}")
            expect(page.locator("#tenant")).to_have_text("ACME 示例企业")
            expect(page.locator("#department")).to_have_text("前端组 Web")
            expect(page.locator("#role")).to_contain_text("成员")
            expect(page.locator("#role")).to_contain_text("Member")
            expect(page.locator("#expiresAt")).to_contain_text("UTC+08:00")
            for token in ("#userName", "#expiresAt time"):  # never broken across lines
                box = page.locator(token).bounding_box()
                line = float(
                    page.locator(token).evaluate("e => getComputedStyle(e).lineHeight")[:-2]
                )
                assert box is not None and box["height"] < 1.5 * line, token
            # (the signed-in page's pictures, with an app to go on to, are
            # tests/test_browser_way_around.py's)
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

            # The logout confirmation has a way back.
            page.goto(demo["identity"] + "/sso/logout")
            expect(page.locator("#logout")).to_be_visible()
            shot(page, "logout")
            page.locator("#stay").click()
            expect(page.locator("#name")).to_have_text("Bob 鲍勃")

            # The marketplace disables bob: his next request says why, once.
            _simulate(demo, "disable-member", tenant, "bob")
            try:
                page.reload()
                expect(page.locator("#session-ended")).to_be_visible()
                expect(page.locator("#why")).to_contain_text("Your account has been disabled")
                expect(page.locator("#reason")).to_have_text("member_disabled")
                expect(page.locator("#switch")).to_be_visible()
                shot(page, "session-ended")
                page.reload()
                expect(page.locator("#signed-out")).to_contain_text("You are not signed in")
                shot(page, "signed-out")
            finally:
                _simulate(demo, "enable-member", tenant, "bob")

            # Sign in as alice and out again: the signed-out page leads back in.
            page.goto(demo["identity"] + "/sso/switch?tenant=" + tenant)
            sign_in_at_auth_centre(page, demo["account"], demo["password"])
            expect(page.locator("#role")).to_contain_text("Administrator")
            page.locator("#logout").click()
            expect(page.locator("#signed-out")).to_contain_text("You have signed out")
            shot(page, "logged-out")
            page.goto(demo["identity"] + "/no/such/page")
            expect(page.locator("#not-found")).to_be_visible()
            shot(page, "not-found")
        finally:
            browser.close()


def _someone_elses_link(demo: dict[str, str], account: str) -> str:
    """The unified login (Flow A) done as `account` elsewhere, stopped before the callback:
    the callback link with its unused code, as it could be sent to someone else."""
    with httpx.Client() as elsewhere:
        page = elsewhere.get(demo["unified"])
        form = login_form(page.text)
        assert form.action is not None
        password = f"{account.split('@')[0]}-demo-password"
        fields = {**form.inputs, "username": account, "password": password}
        sent = elsewhere.post(urljoin(str(page.url), form.action), data=fields)
    assert sent.status_code == 302 and "/sso/callback/" in sent.headers["location"], sent.text
    return str(sent.headers["location"])


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=list(VIEWPORTS))
def test_someone_elses_unified_login_link_asks_before_switching(
    demo: dict[str, str], viewport: str, tmp_path: Path
) -> None:
    shot = shooter(tmp_path, viewport)
    width, height = VIEWPORTS[viewport]
    identity_url, tenant = demo["identity"], demo["account"].split("@")[1]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(demo["url"])
            sign_in_at_auth_centre(page, demo["account"], demo["password"])
            expect(page.locator("#userName")).to_have_text(demo["account"])

            # bob's unused link, opened in alice's browser: a question, not a switch.
            page.goto(_someone_elses_link(demo, f"bob@{tenant}"))
            expect(page.locator("#switch-account")).to_be_visible()
            expect(page.locator("#signed-in-as")).to_have_text(demo["account"])
            expect(page.locator("#continue-as")).to_have_text(f"bob@{tenant}")
            expect(page.locator("#continue")).to_contain_text(f"Continue as bob@{tenant}")
            shot(page, "switch-account")
            page.locator("#stay").click()
            expect(page.locator("#userName")).to_have_text(demo["account"])

            # Another link of bob's, and this time the member does mean to continue as bob.
            page.goto(_someone_elses_link(demo, f"bob@{tenant}"))
            page.locator("#continue").click()
            page.wait_for_load_state()
            signed_in = page.request.get(identity_url + "/sso/session").json()
            assert signed_in["userName"] == "bob"
        finally:
            browser.close()
