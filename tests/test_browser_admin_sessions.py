"""A member's sessions in the admin console, in headless Chromium at desktop and phone widths:
bob signs in from a desktop and from a phone (each context with a user agent and an address of
its own, as a proxy would forward it), the admin sees the two told apart, asks to end them, is
asked first, cancels (nothing changes), then confirms. Screenshots go to `$IDENTITY_SCREENSHOTS`
when set: admin-member-*, admin-confirm-end-sessions-*."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.helpers.chromium import (
    CHROMIUM,
    FLAGS,
    VIEWPORTS,
    needs_chromium,
    shooter,
    sign_in_at_auth_centre,
)
from tests.helpers.demo_process import end_sessions

pytestmark = needs_chromium

DESKTOP_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
OFFICE, MOBILE = "198.51.100.24", "2001:db8:85a3::8a2e:370:7334"


def _sign_in(page: Page, start: str, tenant: str, account: str, password: str) -> None:
    page.goto(start)
    if page.locator("input[name=tenant]").count():
        page.fill("input[name=tenant]", tenant)
        page.get_by_role("button", name=re.compile("Continue")).click()
    sign_in_at_auth_centre(page, account, password)


def _bob_from(browser: Browser, demo: dict[str, str], user_agent: str, address: str) -> Page:
    """bob signed in through the marketplace from a browser of this kind and address."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 800},
        user_agent=user_agent,
        extra_http_headers={"X-Forwarded-For": address},
    )
    page = context.new_page()
    tenant = demo["account"].split("@")[1]
    _sign_in(page, demo["identity"] + "/sso/login", tenant, f"bob@{tenant}", "bob-demo-password")
    expect(page.locator("#name")).to_have_text("Bob 鲍勃")
    return page


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=list(VIEWPORTS))
def test_an_admin_tells_a_members_sessions_apart_and_confirms_ending_them(
    demo: dict[str, str], viewport: str, tmp_path: Path
) -> None:
    end_sessions(demo, "bob")
    shot = shooter(tmp_path, viewport)
    width, height = VIEWPORTS[viewport]
    identity, tenant = demo["identity"], demo["account"].split("@")[1]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            desk = _bob_from(browser, demo, DESKTOP_CHROME, OFFICE)
            _bob_from(browser, demo, IPHONE_SAFARI, MOBILE)

            admin = browser.new_context(viewport={"width": width, "height": height}).new_page()
            _sign_in(admin, identity + "/admin", tenant, demo["account"], demo["password"])
            expect(admin.locator("#members")).to_be_visible()
            admin.goto(identity + "/admin/members/bob")
            rows = admin.locator("#sessions tbody tr")
            expect(rows).to_have_count(2)
            phone_row = rows.filter(has_text="iOS 17.4")
            expect(phone_row).to_contain_text("Mobile Safari 17")
            expect(phone_row).to_contain_text(MOBILE)
            expect(phone_row).to_contain_text("企业账号登录 Marketplace")
            desk_row = rows.filter(has_text="Windows 10")
            expect(desk_row).to_contain_text("Chrome 131")
            expect(desk_row).to_contain_text(OFFICE)
            shot(admin, "admin-member")

            # Asked first; Cancel changes nothing.
            admin.locator("#end-sessions").click()
            expect(admin.locator("#confirm-end-sessions")).to_contain_text("Bob 鲍勃")
            expect(admin.locator("#confirm-sessions li")).to_have_count(2)
            shot(admin, "admin-confirm-end-sessions")
            admin.locator("#cancel").click()
            expect(admin.locator("#member-name")).to_contain_text("Bob 鲍勃")
            expect(rows).to_have_count(2)
            desk.reload()
            expect(desk.locator("#name")).to_have_text("Bob 鲍勃")

            admin.locator("#end-sessions").click()
            admin.locator("#confirm").click()
            expect(admin.locator("#ended")).to_contain_text("2 sessions ended")
            expect(admin.locator("#no-sessions")).to_be_visible()
            desk.reload()
            expect(desk.locator("#why")).to_contain_text("administrator ended your session")

            # The admin's own page marks the session they are using.
            admin.goto(identity + "/admin/members/alice")
            expect(admin.locator("#sessions tr.current")).to_contain_text("当前会话 This session")
        finally:
            browser.close()
