"""`identity demo` clicked through in headless Chromium: sign in as a member, see who you are,
sign out. Debian's /usr/bin/chromium, driven by Playwright (never `playwright install`)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

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
from tests.helpers.servers import ROOT, free_port
from tests.helpers.waiting import until_sync


@needs_chromium
def test_member_signs_in_sees_who_they_are_and_signs_out(
    demo: dict[str, str], tmp_path: Path
) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(demo["url"])
            # The simulator's login form (the tenant's auth centre).
            page.fill("input[name=username]", demo["account"])
            page.fill("input[name=password]", demo["password"])
            page.get_by_role("button", name=re.compile("Sign in")).click()
            # Back at identity, signed in.
            expect(page.locator("#name")).to_have_text("Alice 爱丽丝")
            expect(page.locator("#userName")).to_have_text(demo["account"])
            expect(page.locator("#role")).to_contain_text("Administrator")
            assert page.url.endswith("/sso/me")
            page.screenshot(path=str(tmp_path / "signed-in.png"))
            session = page.request.get(page.url.replace("/sso/me", "/sso/session"))
            assert session.status == 200 and session.json()["userName"] == "alice"

            page.locator("#logout").click()
            # Through the auth centre's logout and back to identity's signed-out page.
            expect(page.locator("#signed-out")).to_contain_text("You have signed out")
            session = page.request.get(page.url.replace("/sso/logged-out", "/sso/session"))
            assert session.status == 401
            page.goto(demo["url"])  # the auth centre's own session ended too: form again
            expect(page.locator("input[name=password]")).to_be_visible()
        finally:
            browser.close()


def _simulate(demo: dict[str, str], event: str, member: str) -> None:
    """The marketplace disables or enables a member: `identity simulate EVENT acme MEMBER`,
    as the banner says."""
    argv = ["simulate", event, "acme", member, "--demo-dir", demo["folder"]]
    done = identity(Path(demo["folder"]), *argv)
    assert done.returncode == 0, done.stderr


@needs_chromium
def test_the_example_app_signs_in_through_identity_and_hears_when_access_ends(
    demo: dict[str, str], tmp_path: Path
) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(demo["example"])
            expect(page.locator("#signed-out")).to_be_visible()
            page.locator("#login").click()
            # identity does not know the member's enterprise yet: it asks for the code.
            page.fill("input[name=tenant]", demo["account"].split("@")[1])
            page.get_by_role("button", name=re.compile("Continue")).click()
            page.fill("input[name=username]", demo["account"])
            page.fill("input[name=password]", demo["password"])
            page.get_by_role("button", name=re.compile("Sign in")).click()
            # Back at the app, with the member's claims from identity's ID token.
            expect(page.locator("#signed-in")).to_contain_text("Alice 爱丽丝")
            expect(page.locator("#claim-preferred_username")).to_have_text("alice")
            expect(page.locator("#claim-tenant_code")).to_have_text("acme")
            expect(page.locator("#claim-role")).to_have_text("admin")
            page.screenshot(path=str(tmp_path / "example-app.png"))

            # identity ends her session and the worker tells the app. The demo is shared by
            # the browser tests: she is enabled again whatever happens here.
            _simulate(demo, "disable-member", "alice")
            try:

                def signed_out() -> bool:
                    page.goto(demo["example"])
                    return page.locator("#signed-out").count() > 0

                until_sync(signed_out, "the app signs alice out", within=20, every=0.5)
                expect(page.locator("#signed-out")).to_be_visible()
            finally:
                _simulate(demo, "enable-member", "alice")
        finally:
            browser.close()


@needs_chromium
@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_example_app_shows_the_enterprise_and_hears_its_changes(
    demo: dict[str, str], tmp_path: Path, viewport: str
) -> None:
    """Its People page reads the directory (SCIM) and reloads when identity's worker sends it
    the change `identity simulate disable-member` made (a signed event)."""
    shot = shooter(tmp_path, viewport)
    with chromium_page(viewport) as page:
        page.goto(demo["example"])
        page.locator("#login").click()
        page.fill("input[name=tenant]", demo["account"].split("@")[1])
        page.get_by_role("button", name=re.compile("Continue")).click()
        sign_in_at_auth_centre(page, demo["account"], demo["password"])
        expect(page.locator("#signed-in")).to_be_visible()
        page.locator("#people-link").click()
        people = page.locator("#people")
        expect(people).to_contain_text("bob@acme")
        expect(people).to_contain_text("carol@acme")
        expect(people).not_to_contain_text("dave@acme")  # not authorised for the app
        expect(page.locator("tr", has_text="bob@acme").locator("td").nth(3)).to_have_text("active")
        shot(page, "example-people")

        _simulate(demo, "disable-member", "bob")
        try:  # no click: the page reloads when the event arrives
            bob = page.locator("tr", has_text="bob@acme").locator("td").nth(3)
            expect(bob).to_have_text("inactive", timeout=20_000)
            expect(page.locator("#changes")).to_contain_text("directory.user.deactivated")
            shot(page, "example-people-changed")
        finally:
            _simulate(demo, "enable-member", "bob")


def test_the_demo_refuses_a_port_another_process_serves(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
        env |= {"PYTHONPATH": str(ROOT)}
        argv = [sys.executable, "-m", "identity.cli", "demo", "--dir", str(tmp_path)]
        argv += ["--port", str(taken), "--sim-port", str(free_port())]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"port {taken}" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_sigterm_stops_the_demo_and_its_children(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(3)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    env |= {"PYTHONPATH": str(ROOT), "IDENTITY_LOG_LEVEL": "WARNING"}
    argv = [sys.executable, "-m", "identity.cli", "demo", "--dir", str(tmp_path)]
    argv += ["--port", str(ports[0]), "--sim-port", str(ports[1]), "--app-port", str(ports[2])]
    demo = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    assert demo.stdout is not None
    for line in demo.stdout:
        if line.startswith("Press Ctrl-C"):
            break
    demo.send_signal(signal.SIGTERM)
    assert demo.wait(timeout=30) is not None
    demo.stdout.close()
    for port in ports:  # nothing left listening
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, port
