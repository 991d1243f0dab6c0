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
from tests.helpers.demo_process import identity as simulate

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

            admin.fill("#q", "bo")
            admin.get_by_role("button", name=re.compile("Find")).click()
            expect(admin.locator("#members tbody tr")).to_have_count(1)
            admin.locator("#members a", has_text="Bob").click()
            expect(admin.locator("#member-name")).to_contain_text("Bob 鲍勃")
            expect(admin.locator("#department")).to_have_text("前端组 Web")
            expect(admin.locator("#sessions tbody tr")).to_have_count(1)
            # (test_browser_admin_sessions.py takes the member page's pictures)

            admin.locator("#end-sessions").click()
            admin.locator("#confirm").click()  # the confirmation page asks first
            expect(admin.locator("#ended")).to_contain_text("1 session ended")
            expect(admin.locator("#no-sessions")).to_be_visible()

            # The member's open page: the next request signs them out, and says why.
            member.reload()
            expect(member.locator("#why")).to_contain_text("administrator ended your session")

            admin.goto(identity + "/admin/departments")
            expect(admin.locator("#departments")).to_contain_text("研发部 R&D")
            shot(admin, "admin-departments")
        finally:
            browser.close()


FITS = """input => {
    const style = getComputedStyle(input);
    const pen = document.createElement("canvas").getContext("2d");
    pen.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    return pen.measureText(input.placeholder).width <= room;
}"""


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=list(VIEWPORTS))
def test_the_console_lists_say_how_many_and_what_each_sync_did(
    demo: dict[str, str], viewport: str, tmp_path: Path
) -> None:
    """The member list: the search box in line with the selects beside it, its placeholder
    whole, and a summary of the page ("第 1–3 名，共 3 名 / 1–3 of 3"). The syncs page: each
    call in words, what it changed, the app by name, the raw interface and code folded away."""
    shot = shooter(tmp_path, viewport)
    width, height = VIEWPORTS[viewport]
    identity = demo["identity"]
    tenant = demo["account"].split("@")[1]
    at = ("--demo-dir", demo["folder"])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            admin = browser.new_context(viewport={"width": width, "height": height}).new_page()
            _sign_in(admin, identity + "/admin", tenant, demo["account"], demo["password"])
            rows = admin.locator("#members tbody tr")
            expect(rows.first).to_be_visible()
            n = rows.count()
            expect(admin.locator("#summary")).to_have_text(f"第 1–{n} 名，共 {n} 名 1–{n} of {n}")
            assert admin.locator("#q").evaluate(FITS), "the search box's placeholder is cut"
            boxes = [
                admin.locator(field).bounding_box()
                for field in ("#q", "#org_code", "#state", ".filters button")
            ]
            assert all(boxes), boxes
            if viewport == "desktop":  # one row: the same top and height
                assert {round(b["y"]) for b in boxes if b} == {round(boxes[0]["y"])}, boxes
            assert {round(b["height"]) for b in boxes if b} == {round(boxes[0]["height"])}, boxes
            shot(admin, "admin-members")

            # bob disabled, then enabled again (as later tests find him): two more calls.
            for event in ("disable-member", "enable-member"):
                done = simulate(Path(demo["folder"]), "simulate", event, tenant, "bob", *at)
                assert done.returncode == 0, done.stderr
            admin.goto(identity + "/admin/syncs")
            syncs = admin.locator("#syncs")
            newest, disabled = syncs.locator("tbody tr").nth(0), syncs.locator("tbody tr").nth(1)
            expect(disabled).to_contain_text("成员授权变更 Members' access changed")
            expect(disabled).to_contain_text("停用 1 名")
            expect(disabled).to_contain_text("1 disabled")
            expect(newest).to_contain_text("成员授权 Members authorised")
            expect(newest).to_contain_text("Details synced; no one added, disabled or removed")
            provisioned = syncs.locator("tbody tr").last  # the enterprise's first call
            expect(provisioned).to_contain_text("租户同步 Enterprise synced")
            expect(provisioned).to_contain_text("企业已开通")
            for words in (
                "部门全量同步 All departments synced",
                "新增 4 个部门",
                "4 departments added",
                "应用绑定 App bound",
                "应用 App：Example ISV app",
                "新增 3 名，停用 1 名",
                "3 added, 1 disabled",
                "成功 Done",
            ):
                expect(syncs).to_contain_text(words)
            # The raw interface and code only in the folded detail, shown on demand (and left
            # open in the picture).
            raw = disabled.locator("details")
            expect(raw.locator("dd").first).to_be_hidden()
            raw.locator("summary").click()
            expect(raw).to_contain_text("原因代码 Reason code")
            expect(raw.locator("dd.code").first).to_have_text("authSync")
            expect(raw.locator("dd.code").last).to_have_text("000000")
            admin.mouse.move(0, 0)
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
            # Asked first, naming the member; on a phone, the question as it looks there.
            expect(admin.locator("#confirm-reset")).to_contain_text("Bob 鲍勃")
            admin.set_viewport_size({"width": 390, "height": 844})
            shot_path = shots / "admin-confirm-reset-phone.png"
            admin.screenshot(path=str(shot_path), full_page=True)
            assert admin.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            admin.set_viewport_size({"width": 1280, "height": 800})
            admin.locator("#confirm").click()
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
            expect(admin.locator("#reset-wait")).to_contain_text("at most 1 reset in 3 minutes")
            expect(admin.locator("#confirm")).to_have_count(0)
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
            expect(member.locator("input[type=password]")).to_have_count(2)  # new, twice
            member.fill("#new", "short")
            member.fill("#again", "short")
            member.locator("#save").click()
            expect(member.locator("#problems")).to_be_visible()
            new_password = "Kiwi-Orchard-2026"
            member.fill("#new", new_password)
            member.fill("#again", new_password)
            member.locator("#save").click()
            expect(member.locator("#name")).to_have_text("Bob 鲍勃")
            assert member.request.get(identity + "/sso/session").json()["userName"] == "bob"
        finally:
            browser.close()
