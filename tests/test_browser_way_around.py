"""A way out and a way on, in headless Chromium at desktop and phone widths, on the shared demo:
the console's header opens a menu (keyboard too) leading to the admin's account and out, which
Escape, a click or a focus elsewhere closes (with its script; without, its name still does); a
member who is not an admin gets a page saying so, whose buttons lead where they say; the
signed-in page lists the apps the member may use, and a listed sign-in address takes them into
the example app, whose claims fit a phone's width.

Screenshots (admin-menu, admin-not-admin, signed-in, example-app) go to
`$IDENTITY_SCREENSHOTS` when set, else to the test's temporary folder."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.helpers.chromium import (
    CHROMIUM,
    FLAGS,
    VIEWPORTS,
    chromium_page,
    needs_chromium,
    shooter,
    sign_in_at_auth_centre,
)
from tests.helpers.demo_process import identity

pytestmark = needs_chromium
NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth"


def _sign_in(page: Page, start: str, tenant: str, account: str, password: str) -> None:
    """From `start`, through the enterprise-code form when asked, and the auth centre's."""
    page.goto(start)
    if page.locator("input[name=tenant]").count():
        page.fill("input[name=tenant]", tenant)
        page.get_by_role("button", name=re.compile("Continue")).click()
    sign_in_at_auth_centre(page, account, password)


def _within_the_screen(page: Page, selector: str) -> None:
    box = page.locator(selector).bounding_box()
    width = page.viewport_size["width"] if page.viewport_size else 0
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, box


def _focused(page: Page) -> str:
    found: str = page.evaluate("document.activeElement && document.activeElement.id")
    return found


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=list(VIEWPORTS))
def test_the_console_header_menu_leads_to_my_account_and_out(
    demo: dict[str, str], viewport: str, tmp_path: Path
) -> None:
    shot = shooter(tmp_path, viewport)
    tenant = demo["account"].split("@")[1]
    with chromium_page(viewport) as page:
        _sign_in(page, demo["identity"] + "/admin", tenant, demo["account"], demo["password"])
        expect(page.locator("#members")).to_be_visible()

        # The admin's name is in the header, at every width; the menu starts closed.
        expect(page.locator("#admin")).to_be_visible()
        expect(page.locator("#admin")).to_contain_text("Alice 爱丽丝")
        expect(page.locator("#my-account")).to_be_hidden()

        # Keyboard: focus the name, Enter opens it, Tab walks its two entries.
        page.locator("#admin").focus()
        page.keyboard.press("Enter")
        expect(page.locator("#my-account")).to_be_visible()
        expect(page.locator("#admin-account")).to_have_text(demo["account"])
        expect(page.locator("#my-account")).to_contain_text("我的账号")
        expect(page.locator("#my-account")).to_contain_text("My account")
        expect(page.locator("#sign-out")).to_contain_text("退出登录")
        expect(page.locator("#sign-out")).to_contain_text("Sign out")
        _within_the_screen(page, ".account-panel")
        shot(page, "admin-menu")
        page.keyboard.press("Tab")
        assert _focused(page) == "my-account"
        page.keyboard.press("Tab")
        assert _focused(page) == "sign-out"
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Enter")  # on "My account"
        expect(page.locator("#name")).to_have_text("Alice 爱丽丝")
        assert page.url.endswith("/sso/me")

        # From another console page, by pointer: sign out.
        page.goto(demo["identity"] + "/admin/departments")
        page.locator("#admin").click()
        page.locator("#sign-out").click()
        expect(page.locator("#signed-out")).to_contain_text("You have signed out")
        page.goto(demo["identity"] + "/admin")  # signed out: asked to sign in again
        expect(page.locator("input[name=tenant]")).to_be_visible()


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=list(VIEWPORTS))
def test_the_console_header_menu_closes_on_escape_and_outside(
    demo: dict[str, str], viewport: str
) -> None:
    """static/menu.js, loaded from our origin at a content-versioned address (the policy runs
    no inline script): Escape closes the menu and puts focus back on the admin's name; a click,
    or a focus, elsewhere closes it too."""
    tenant = demo["account"].split("@")[1]
    with chromium_page(viewport) as page:
        refused: list[str] = []  # the policy's refusals and the script's errors
        page.on("console", lambda m: refused.append(m.text) if "Policy" in m.text else None)
        page.on("pageerror", lambda error: refused.append(str(error)))
        _sign_in(page, demo["identity"] + "/admin", tenant, demo["account"], demo["password"])
        expect(page.locator("#members")).to_be_visible()
        script = page.locator('script[src^="/static/menu.js?v="][defer]')
        expect(script).to_have_count(1)
        served = page.request.get(demo["identity"] + (script.get_attribute("src") or ""))
        assert served.ok and served.headers["content-type"].startswith("text/javascript")
        menu, name = page.locator("#admin-menu"), page.locator("#admin")

        # Escape, from the name and from an entry inside: closed, focus on the name.
        for inside in ("#admin", "#my-account"):
            name.click()
            expect(menu).to_have_attribute("open", "")
            page.locator(inside).focus()
            page.keyboard.press("Escape")
            expect(menu).not_to_have_attribute("open", re.compile(".*"))
            expect(page.locator("#my-account")).to_be_hidden()
            assert _focused(page) == "admin"

        # A click elsewhere on the page (its footer, clear of the panel on a phone): closed.
        name.click()
        expect(menu).to_have_attribute("open", "")
        page.locator("footer").click()
        expect(menu).not_to_have_attribute("open", re.compile(".*"))
        expect(page.locator("#my-account")).to_be_hidden()

        # A click inside the panel keeps it open; Tab past its last entry closes it.
        name.click()
        page.locator(".account-who").click()
        expect(menu).to_have_attribute("open", "")
        page.locator("#sign-out").focus()
        page.keyboard.press("Tab")
        expect(menu).not_to_have_attribute("open", re.compile(".*"))
        assert not refused, refused  # nothing blocked by the policy, no script error


def test_without_javascript_the_console_header_menu_opens_and_closes_by_its_name(
    demo: dict[str, str],
) -> None:
    tenant = demo["account"].split("@")[1]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_context(java_script_enabled=False).new_page()
            _sign_in(page, demo["identity"] + "/admin", tenant, demo["account"], demo["password"])
            expect(page.locator("#members")).to_be_visible()
            page.locator("#admin").click()
            expect(page.locator("#my-account")).to_be_visible()
            page.locator("#admin").click()
            expect(page.locator("#my-account")).to_be_hidden()
            page.locator("#admin").focus()
            page.keyboard.press("Enter")
            expect(page.locator("#my-account")).to_be_visible()
        finally:
            browser.close()


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=list(VIEWPORTS))
def test_a_member_who_is_not_an_admin_is_told_so_and_can_sign_in_as_someone_else(
    demo: dict[str, str], viewport: str, tmp_path: Path
) -> None:
    shot = shooter(tmp_path, viewport)
    tenant = demo["account"].split("@")[1]
    with chromium_page(viewport) as page:
        _sign_in(page, demo["url"], tenant, f"bob@{tenant}", "bob-demo-password")
        expect(page.locator("#name")).to_have_text("Bob 鲍勃")

        page.goto(demo["identity"] + "/admin")
        expect(page).to_have_title(re.compile("^不是管理员 / Not an administrator"))
        expect(page.locator("#not-admin")).to_contain_text("You are not an administrator")
        expect(page.locator("#what")).to_contain_text("for your enterprise's administrators")
        expect(page.locator("#userName")).to_have_text(f"bob@{tenant}")
        expect(page.locator("#name")).to_have_text("Bob 鲍勃")
        expect(page.get_by_text("Back to the console")).to_have_count(0)
        expect(page.locator("#sign-in-again")).to_have_text(
            "使用其他账号登录 / Sign in as someone else"
        )
        shot(page, "admin-not-admin")

        # "My account" is bob's own page.
        page.locator("#my-account").click()
        expect(page.locator("#userName")).to_have_text(f"bob@{tenant}")
        assert page.url.endswith("/sso/me")

        # "Sign in as someone else": bob is signed out (the auth centre too, so it asks
        # again rather than signing bob straight back in), then the console's sign-in.
        page.go_back()
        page.locator("#sign-in-again").click()
        expect(page.locator("input[name=password]")).to_be_visible()
        assert page.request.get(demo["identity"] + "/sso/session").status == 401
        sign_in_at_auth_centre(page, demo["account"], demo["password"])
        expect(page.locator("#members")).to_be_visible()
        assert page.url.endswith("/admin")


@contextmanager
def _client_with_a_sign_in_address(demo: dict[str, str]) -> Iterator[None]:
    """A second client of the example app's KooGallery app, registered with the example app's
    /login as its `initiate_login_uri` (`identity clients add`, as an operator would), removed
    afterwards: the shared demo's own client registers none."""
    folder = Path(demo["folder"])
    listed = identity(folder, "clients", "list", "--json", "--demo-dir", demo["folder"])
    assert listed.returncode == 0, listed.stderr
    (example,) = json.loads(listed.stdout)
    app = demo["example"].rstrip("/")
    added = identity(
        folder,
        "clients", "add", "--app", example["app_id"], "--name", "示例应用 Example app",
        "--redirect-uri", f"{app}/callback", "--initiate-login-uri", f"{app}/login",
        "--json", "--demo-dir", demo["folder"],
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    client_id = json.loads(added.stdout)["client_id"]
    try:
        yield
    finally:
        removed = identity(folder, "clients", "remove", client_id, "--demo-dir", demo["folder"])
        assert removed.returncode == 0, removed.stderr


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=list(VIEWPORTS))
def test_the_signed_in_page_lists_the_member_s_apps_and_leads_into_them(
    demo: dict[str, str], viewport: str, tmp_path: Path
) -> None:
    shot = shooter(tmp_path, viewport)
    tenant = demo["account"].split("@")[1]
    app = demo["example"].rstrip("/")
    with chromium_page(viewport) as page:
        _sign_in(page, demo["url"], tenant, f"bob@{tenant}", "bob-demo-password")
        expect(page.locator("#name")).to_have_text("Bob 鲍勃")

        # The demo's app: its one client registered no sign-in address; it is listed, and
        # says so, without a link.
        apps = page.locator("#apps li")
        expect(apps).to_have_count(1)
        expect(apps.first).to_contain_text("Example ISV app")
        expect(apps.first).to_contain_text("No sign-in address is registered")
        expect(page.locator("#apps a")).to_have_count(0)

        with _client_with_a_sign_in_address(demo):
            page.reload()
            expect(apps).to_have_count(2)
            link = page.locator("#apps a")
            expect(link).to_have_count(1)
            expect(link).to_contain_text("示例应用 Example app")
            expect(link).to_contain_text("Open")
            href = link.get_attribute("href") or ""
            assert href.startswith(f"{app}/login?iss="), href
            assert f"login_hint=bob%40{tenant}" in href, href
            shot(page, "signed-in")

            # It takes bob into the app, signed in as himself, without asking again.
            link.click()
            expect(page.locator("#signed-in")).to_contain_text("Bob 鲍勃")
            expect(page.locator("#claim-preferred_username")).to_have_text("bob")
            assert page.url.startswith(app)
            assert page.evaluate(NO_SIDEWAYS_SCROLL), "the example app scrolls sideways"
            if viewport == "phone":
                shot(page, "example-app")
