"""The buyer's console of `identity demo` in headless Chromium: the administrator creates an
enterprise, binds the app, adds a member and authorises the app to them; the member signs in to
the demo's example app with the initial password the development sender wrote, changing it
first. Screenshots at desktop and phone widths (`console-*.png`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import expect

from tests.helpers.chromium import (
    VIEWPORTS,
    chromium_page,
    needs_chromium,
    shooter,
    sign_in_at_auth_centre,
)

MOBILE = "+8613700000051"
NEW_PASSWORD = "Juniper-pass-2027"


def _initial_password(demo: dict[str, str]) -> str:
    """What the development sender wrote to the member's phone (identity-demo/messages.jsonl)."""
    lines = (Path(demo["folder"]) / "messages.jsonl").read_text("utf-8").splitlines()
    sent = [m for m in map(json.loads, lines) if m["to"] == MOBILE]
    assert [m["kind"] for m in sent] == ["initial_password"], sent
    return str(sent[0]["secret"])


@needs_chromium
def test_the_buyer_sets_up_an_enterprise_and_its_member_signs_in_to_the_example_app(
    demo: dict[str, str], tmp_path: Path
) -> None:
    desktop, phone = shooter(tmp_path, "desktop"), shooter(tmp_path, "phone")
    with chromium_page("desktop") as page:
        page.goto(demo["console"])
        page.fill("#account", demo["buyer"])
        page.fill("#password", demo["buyer_password"])
        page.locator("#sign-in").click()
        expect(page.locator("#enterprises")).to_contain_text("acme")  # the demo's own
        page.fill("input[name=name]", "Juniper 杜松")
        page.fill("input[name=code]", "juniper")
        page.locator("#create-enterprise").click()
        expect(page.locator("#bound")).to_have_text("未绑定 / not bound")
        page.locator("#bind").click()
        expect(page.locator("#result .delivery .tag")).to_have_text("已送达 / delivered")
        page.fill("#members input[name=account]", "mia")
        page.fill("#members input[name=name]", "Mia 米娅")
        page.fill("#members input[name=mobile]", MOBILE)
        page.locator("#add-member").click()
        expect(page.locator("#result-text")).to_contain_text("mia@juniper")
        page.locator("#member-mia .op-authorise").click()
        expect(page.locator("#result-text")).to_contain_text("authorised: mia@juniper")
        expect(page.locator("#result .calls")).to_contain_text("authSync")
        page.mouse.move(0, 0)
        enterprise = page.url
        for viewport, shot in (("desktop", desktop), ("phone", phone)):
            if viewport == "phone":
                width, height = VIEWPORTS[viewport]
                page.set_viewport_size({"width": width, "height": height})
                page.goto(enterprise)  # the result is shown once: the page as it stays
            shot(page, "console-enterprise")
            page.locator("#member-mia a.reset").click()
            expect(page.locator("#send-code")).to_be_visible()
            shot(page, "console-reset")
            page.goto(demo["console"])
            expect(page.locator("#enterprises")).to_contain_text("juniper")
            shot(page, "console-home")

    with chromium_page("phone") as member:
        member.goto(demo["example"])
        member.locator("#login").click()
        member.fill("input[name=tenant]", "juniper")
        member.get_by_role("button", name=re.compile("Continue")).click()
        sign_in_at_auth_centre(member, "mia@juniper", _initial_password(demo))
        expect(member.locator("h1")).to_contain_text("Change your password")
        phone(member, "console-first-sign-in")
        width, height = VIEWPORTS["desktop"]
        member.set_viewport_size({"width": width, "height": height})
        desktop(member, "console-first-sign-in")
        member.set_viewport_size({"width": VIEWPORTS["phone"][0], "height": VIEWPORTS["phone"][1]})
        member.fill("#new_password", NEW_PASSWORD)
        member.fill("#again", NEW_PASSWORD)
        member.get_by_role("button", name=re.compile("Change and sign in")).click()
        expect(member.locator("#signed-in")).to_contain_text("Mia 米娅")
        expect(member.locator("#claim-tenant_code")).to_have_text("juniper")
