"""A member refused on the way to an app returns to it, in headless Chromium at desktop and
phone widths: the demo's example app starts the sign-in, identity refuses a disabled member
with its page (which keeps its way out), and "return to the app" lands on the app, which
learns why. Screenshots go to `$IDENTITY_SCREENSHOTS` when set, else to the test's folder."""

from __future__ import annotations

import re
from pathlib import Path

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

pytestmark = needs_chromium


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=list(VIEWPORTS))
def test_a_member_refused_on_the_way_to_the_app_returns_to_it(
    demo: dict[str, str], viewport: str, tmp_path: Path
) -> None:
    shot = shooter(tmp_path, viewport)
    width, height = VIEWPORTS[viewport]
    tenant = demo["account"].split("@")[1]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(demo["example"])
            page.locator("#login").click()
            page.fill("input[name=tenant]", tenant)
            page.get_by_role("button", name=re.compile("Continue")).click()
            sign_in_at_auth_centre(page, f"carol@{tenant}", "carol-demo-password")

            expect(page.locator("#reason")).to_have_text("member_disabled")
            expect(page.locator("#switch")).to_be_visible()  # the way out stays
            expect(page.locator("#back-to-app")).to_contain_text("Return to the app")
            shot(page, "refused-app")

            page.locator("#back-to-app").click()
            expect(page.locator("#refused")).to_contain_text("access_denied")
            assert page.url.startswith(demo["example"])
        finally:
            browser.close()
