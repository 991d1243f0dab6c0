"""The admin console in headless Chromium, at desktop and phone widths: the demo's admin signs
in through the marketplace, finds a member, and ends the member's sessions while the member's
own page is open (it is signed out, and told why). Screenshots go to `$IDENTITY_SCREENSHOTS`
when set, else to the test's temporary folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.helpers.chromium import (
    CHROMIUM,
    FLAGS,
    VIEWPORTS,
    needs_chromium,
    screenshot_folder,
    shooter,
    sign_in_at_auth_centre,
)
from tests.helpers.demo_process import end_sessions

pytestmark = needs_chromium


def _sign_in(page: Page, start: str, tenant: str, account: str, password: str) -> None:
    page.goto(start)
    if page.locator("input[name=tenant]").count():
        page.fill("input[name=tenant]", tenant)
        page.get_by_role("button", name=re.compile("Continue")).click()
    sign_in_at_auth_centre(page, account, password)


@pytest.fixture
def bob_signed_out(demo: dict[str, str]) -> dict[str, str]:
    """The shared demo with none of bob's sessions left by earlier tests."""
    end_sessions(demo, "bob")
    return demo


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=list(VIEWPORTS))
def test_an_admin_finds_a_member_and_ends_their_sessions(
    bob_signed_out: dict[str, str], viewport: str, tmp_path: Path
) -> None:
    demo = bob_signed_out
    shot = shooter(tmp_path, viewport)
    width, height = VIEWPORTS[viewport]

    identity = demo["identity"]
    tenant = demo["account"].split("@")[1]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            size = {"width": width, "height": height}
            member = browser.new_context(viewport=size).new_page()
            _sign_in(member, identity + "/sso/login", tenant, f"bob@{tenant}", "bob-demo-password")
            expect(member.locator("#name")).to_have_text("Bob 鲍勃")

            # A plain member is not an admin.
            member.goto(identity + "/admin")
            expect(member.locator("#reason")).to_have_text("forbidden")
            member.goto(identity + "/sso/me")

            admin = browser.new_context(viewport=size).new_page()
            _sign_in(admin, identity + "/admin", tenant, demo["account"], demo["password"])
            expect(admin.locator("#members")).to_be_visible()
            assert admin.url.endswith("/admin")
            shot(admin, "admin-members")

            admin.fill("#q", "bo")
            admin.get_by_role("button", name=re.compile("Find")).click()
            expect(admin.locator("#members tbody tr")).to_have_count(1)
            admin.locator("#members a", has_text="Bob").click()
            expect(admin.locator("#member-name")).to_contain_text("Bob 鲍勃")
            expect(admin.locator("#department")).to_have_text("前端组 Web")
            expect(admin.locator("#sessions tbody tr")).to_have_count(1)
            shot(admin, "admin-member")

            admin.locator("#end-sessions").click()
            expect(admin.locator("#ended")).to_contain_text("1 session ended")
            expect(admin.locator("#no-sessions")).to_be_visible()

            # The member's open page: the next request signs them out, and says why.
            member.reload()
            expect(member.locator("#why")).to_contain_text("administrator ended your session")

            admin.goto(identity + "/admin/departments")
            expect(admin.locator("#departments")).to_contain_text("研发部 R&D")
            shot(admin, "admin-departments")
            admin.goto(identity + "/admin/syncs")
            expect(admin.locator("#syncs")).to_contain_text("authSync")
            shot(admin, "admin-syncs")
        finally:
            browser.close()


def _messages(demo: dict[str, str], kind: str) -> list[dict[str, str]]:
    """What the demo's development sender wrote (identity-demo/messages.jsonl)."""
    path = Path(demo["folder"]) / "messages.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [m for m in map(json.loads, lines) if m["kind"] == kind]


def test_an_admin_resets_a_password_and_the_member_must_change_it(
    demo: dict[str, str], tmp_path: Path
) -> None:
    shots = screenshot_folder(tmp_path)
    identity = demo["identity"]
    tenant = demo["account"].split("@")[1]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            admin = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            _sign_in(admin, identity + "/admin", tenant, demo["account"], demo["password"])
            admin.goto(identity + "/admin/members/bob")
            codes_before = len(_messages(demo, "reset_code"))
            admin.locator("#reset-password").click()
            expect(admin.locator("#sent-to")).to_have_text("+86138****0001")  # alice's phone
            admin.screenshot(path=str(shots / "admin-reset-code-desktop.png"), full_page=True)
            sent = _messages(demo, "reset_code")
            assert len(sent) == codes_before + 1 and sent[-1]["to"] == "+8613800000001"
            admin.fill("#code", "000000" if sent[-1]["secret"] != "000000" else "111111")
            admin.locator("#confirm").click()
            expect(admin.locator("#error")).to_contain_text("wrong")
            admin.fill("#code", sent[-1]["secret"])
            admin.locator("#confirm").click()
            expect(admin.locator("#reset-done")).to_be_visible()
            initial = _messages(demo, "initial_password")[-1]
            assert initial["to"] == "+8613800000002"  # bob's phone
            assert initial["secret"] not in admin.content()  # never shown to the admin

            # A second reset at once: refused, and the page says when the next is allowed.
            admin.locator("#reset-password").click()
            expect(admin.locator("#reset-wait")).to_contain_text("next one is allowed after")
            admin.set_viewport_size({"width": 390, "height": 844})
            admin.screenshot(path=str(shots / "admin-reset-wait-phone.png"), full_page=True)

            # bob signs in with the initial password and must change it first.
            member = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
            member.goto(identity + "/login")
            member.fill("#account", f"bob@{tenant}")
            member.fill("#password", "not-the-password")
            member.locator("#sign-in").click()
            expect(member.locator("#error")).to_contain_text("The account or password is wrong")
            member.fill("#account", f"bob@{tenant}")
            member.fill("#password", initial["secret"])
            member.locator("#sign-in").click()
            expect(member.locator("#change-password")).to_be_visible()
            member.screenshot(path=str(shots / "login-change-phone.png"), full_page=True)
            assert member.request.get(identity + "/sso/session").status == 401  # not yet
            member.fill("#current", initial["secret"])
            member.fill("#new", "short")
            member.fill("#again", "short")
            member.locator("#save").click()
            expect(member.locator("#problems")).to_be_visible()
            new_password = "Kiwi-Orchard-2026"
            member.fill("#current", initial["secret"])
            member.fill("#new", new_password)
            member.fill("#again", new_password)
            member.locator("#save").click()
            expect(member.locator("#name")).to_have_text("Bob 鲍勃")
            assert member.request.get(identity + "/sso/session").json()["userName"] == "bob"
        finally:
            browser.close()
