"""A member's sessions and the console's confirmations, over real HTTP (identity and the
simulator as processes, messages through the development sender): each session is told apart by
how its member signed in, the browser and platform, the address and the apps it holds, the
admin's own marked, and the user agent itself is stored nowhere; "end all sessions" and "reset
password" ask first, naming the member, and Cancel changes nothing; a reset a limit refuses says
which limit and when the next is allowed."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import func, select

from identity.db import Database
from identity.models import Base, PasswordReset
from tests.helpers.admin_api import api, problem, signed_in
from tests.helpers.simulator_world import login_form
from tests.helpers.stack import Browser, Browsers, Stack

MARKER = "Marker/9e41b2"
CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    f"Chrome/131.0.0.0 Safari/537.36 {MARKER}"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    f"Gecko) Version/17.4 Mobile/15E148 Safari/604.1 {MARKER}"
)
MANY_TRIES = {"IDENTITY_PASSWORD_TRIES_PER_MINUTE_PER_ADDRESS": "1000"}


@pytest.fixture(scope="module")
def notify_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("notify") / "messages.jsonl"


@pytest.fixture(scope="module")
def stack_env(notify_file: Path) -> dict[str, str]:
    return {"IDENTITY_NOTIFY_FILE": str(notify_file), **MANY_TRIES}


class Outbox:
    """The development sender's file: one JSON line per message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_text("")

    def messages(self) -> list[dict[str, str]]:
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]


async def reset_bob(admin: Browser, outbox: Outbox) -> str:
    """A whole reset of bob over the API: his initial password, as his e-mail got it."""
    started = await api(admin, "POST", "/members/bob/password-resets")
    assert started.status_code == 202, started.text
    code = [m for m in outbox.messages() if m["kind"] == "reset_code"][-1]["secret"]
    path = f"/password-resets/{started.json()['resetId']}/confirm"
    assert (await api(admin, "POST", path, json={"code": code})).status_code == 204
    return outbox.messages()[-1]["secret"]


@pytest.fixture
def outbox(notify_file: Path) -> Outbox:
    return Outbox(notify_file)


def using(browser: Browser, user_agent: str, address: str) -> Browser:
    """The browser sends this user agent, from this address (identity trusts the loopback
    proxy's `X-Forwarded-For`, as `identity serve` does by default)."""
    browser.http.headers.update({"User-Agent": user_agent, "X-Forwarded-For": address})
    return browser


def text_of(page: httpx.Response, element_id: str) -> str:
    """The text of the element with this id, tags dropped and spaces collapsed."""
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</(table|p|ul|h1|div)>', page.text, re.S)
    assert found, (element_id, page.text)
    words = re.sub(r"<[^>]+>", " ", found.group(1).replace("<wbr>", ""))
    return " ".join(html.unescape(words).split())


def href_of(page: httpx.Response, element_id: str) -> str:
    found = re.search(rf'<a [^>]*id="{element_id}"[^>]*href="([^"]+)"', page.text) or re.search(
        rf'<a [^>]*href="([^"]+)"[^>]*id="{element_id}"', page.text
    )
    assert found, (element_id, page.text)
    return html.unescape(found.group(1))


# --- the sessions, told apart ------------------------------------------------------------------


async def test_each_session_shows_how_from_where_and_which_apps(
    acme: Stack, alice: Browser, browsers: Browsers
) -> None:
    app_id = acme.scenario.app_id
    at_desk = using(browsers(acme), CHROME_WINDOWS, "198.51.100.7")
    on_phone = using(browsers(acme), SAFARI_IPHONE, "2001:db8::7")
    await signed_in(acme, at_desk, "bob@acme", "bob-pw")
    await signed_in(acme, on_phone, "bob@acme", "bob-pw")

    sessions = (await api(alice, "GET", "/members/bob")).json()["sessions"]
    shown = sorted(
        (s["method"], s["browser"], s["platform"], s["address"], s["apps"], s["current"])
        for s in sessions
    )
    assert shown == [
        ("marketplace", "Chrome 131", "Windows 10", "198.51.100.7", [app_id], False),
        ("marketplace", "Mobile Safari 17", "iOS 17.4", "2001:db8::7", [app_id], False),
    ]
    assert all(s["appId"] == app_id and s["signedInAt"].endswith("Z") for s in sessions)

    page = await alice.get("/admin/members/bob")
    assert page.status_code == 200
    rows = re.findall(r"<tr[ >].*?</tr>", page.text.split('id="sessions"')[1], re.S)[1:]
    assert len(rows) == 2
    table = text_of(page, "sessions")
    for words in ("Chrome 131 · Windows 10", "Mobile Safari 17 · iOS 17.4", "198.51.100.7"):
        assert words in table
    assert "2001:db8::7" in table and "Marketplace" in table and "This session" not in table

    # The admin's own session, on their own page, is marked.
    own = (await api(alice, "GET", "/members/alice")).json()["sessions"]
    assert [s["current"] for s in own] == [True]
    assert "This session" in text_of(await alice.get("/admin/members/alice"), "sessions")


async def test_a_local_password_session_says_so_and_no_user_agent_is_stored(
    acme: Stack, alice: Browser, browsers: Browsers, outbox: Outbox, db: Database
) -> None:
    initial = await reset_bob(alice, outbox)
    bob = using(browsers(acme), SAFARI_IPHONE, "203.0.113.9")
    page = await bob.get("/login")
    fields = {**login_form(page.text).inputs, "account": "bob@acme", "password": initial}
    changing = await bob.post("/login", data=fields)
    assert changing.status_code == 200 and 'id="change-password"' in changing.text
    assert 'name="current"' not in changing.text  # the initial password is not asked again
    new = {"new": "Blue-Sky-2024", "again": "Blue-Sky-2024"}
    landed = await bob.post("/login/change", data={**login_form(changing.text).inputs, **new})
    assert landed.status_code == 200 and (await bob.session()).json()["userName"] == "bob"

    [session] = (await api(alice, "GET", "/members/bob")).json()["sessions"]
    assert (session["method"], session["browser"], session["platform"], session["address"]) == (
        "password",
        "Mobile Safari 17",
        "iOS 17.4",
        "203.0.113.9",
    )
    assert "Local password" in text_of(await alice.get("/admin/members/bob"), "sessions")
    async with db.read() as s:
        for table in Base.metadata.sorted_tables:
            stored = repr((await s.execute(select(table))).all())
            assert MARKER not in stored and "AppleWebKit" not in stored, table.name


# --- ending sessions asks first ------------------------------------------------------------------


async def test_ending_sessions_asks_first_and_cancel_changes_nothing(
    acme: Stack, alice: Browser, browsers: Browsers
) -> None:
    bob = using(browsers(acme), CHROME_WINDOWS, "198.51.100.7")
    await signed_in(acme, bob, "bob@acme", "bob-pw")
    member = await alice.get("/admin/members/bob")
    assert 'action="/admin/members/bob/end-sessions"' not in member.text  # no one-click form
    asked = await alice.get(href_of(member, "end-sessions"))
    assert asked.status_code == 200 and asked.headers["cache-control"] == "no-store"
    title = text_of(asked, "confirm-end-sessions")
    assert "Bob" in title and "End all sessions of" in title
    assert "bob@acme" in asked.text and "Chrome 131" in text_of(asked, "confirm-sessions")
    assert 'id="confirm-own"' not in asked.text
    form = login_form(asked.text)
    assert form.action == "/admin/members/bob/end-sessions"
    assert set(form.inputs) == {"csrf"} and form.inputs["csrf"]
    assert (await bob.session()).status_code == 200  # asking ended nothing

    back = await alice.get(href_of(asked, "cancel"))
    assert back.status_code == 200 and str(back.url).endswith("/admin/members/bob")
    assert (await bob.session()).status_code == 200  # nor did Cancel
    assert len((await api(alice, "GET", "/members/bob")).json()["sessions"]) == 1

    done = await alice.post(form.action, data=form.inputs)
    assert done.status_code == 200 and "1 session ended" in text_of(done, "ended")
    told = await bob.session()
    assert told.status_code == 401 and told.json()["reason"] == "admin_ended"


async def test_an_admin_ending_their_own_sessions_is_told_they_sign_out_too(
    alice: Browser,
) -> None:
    asked = await alice.get("/admin/members/alice/end-sessions")
    assert "This session" in text_of(asked, "confirm-sessions")
    assert "you will have to sign in again" in text_of(asked, "confirm-own")


async def test_asking_to_end_the_sessions_of_no_session_offers_nothing_to_end(
    alice: Browser,
) -> None:
    member = await alice.get("/admin/members/bob")
    assert re.search(r'<button [^>]*id="end-sessions"[^>]*disabled', member.text)
    asked = await alice.get("/admin/members/bob/end-sessions")
    assert asked.status_code == 200 and "nothing to end" in text_of(asked, "confirm-none")
    assert 'id="confirm"' not in asked.text and 'id="cancel"' in asked.text


async def test_the_confirmations_are_for_admins_of_the_tenant_only(
    acme: Stack, browsers: Browsers
) -> None:
    bob = await signed_in(acme, browsers(acme), "bob@acme", "bob-pw")
    for path in ("/admin/members/alice/end-sessions", "/admin/members/alice/password-resets"):
        assert (await bob.get(path)).status_code == 403
    anonymous = await browsers(acme).http.get(acme.identity + "/admin/members/bob/end-sessions")
    assert anonymous.status_code == 303 and "/sso/login" in anonymous.headers["location"]


# --- resetting asks first, and a limit says which ----------------------------------------------


async def test_resetting_asks_first_and_cancel_sends_nothing(
    acme: Stack, alice: Browser, outbox: Outbox, db: Database
) -> None:
    member = await alice.get("/admin/members/bob")
    asked = await alice.get(href_of(member, "reset-password"))
    assert asked.status_code == 200
    title = text_of(asked, "confirm-reset")
    assert "Bob" in title and "Reset the password of" in title
    assert "bob@acme" in asked.text and 'id="reset-wait"' not in asked.text
    form = login_form(asked.text)
    assert form.action == "/admin/members/bob/password-resets" and set(form.inputs) == {"csrf"}

    back = await alice.get(href_of(asked, "cancel"))
    assert back.status_code == 200 and str(back.url).endswith("/admin/members/bob")
    assert outbox.messages() == []
    async with db.read() as s:
        assert await s.scalar(select(func.count()).select_from(PasswordReset)) == 0

    code_page = await alice.post(form.action, data=form.inputs)
    assert code_page.status_code == 200 and 'id="sent-to"' in code_page.text
    assert [m["kind"] for m in outbox.messages()] == ["reset_code"]

    # Asked again within 3 minutes: the page says which limit, and offers no button.
    again = await alice.get("/admin/members/bob/password-resets")
    waiting = text_of(again, "reset-wait")
    assert "at most 1 reset in 3 minutes for this member and by you" in waiting
    assert "每 3 分钟最多重置 1 次" in waiting and "allowed after" in waiting
    assert 'id="confirm"' not in again.text
    # The old form posted anyway: the member's page names the limit too.
    refused = await alice.http.post(acme.identity + form.action, data=form.inputs)
    assert refused.status_code == 303 and "limit=3min-both" in refused.headers["location"]
    told = text_of(await alice.get(refused.headers["location"]), "reset-wait")
    assert "at most 1 reset in 3 minutes for this member and by you" in told
    assert "next one is allowed after" in told
    api_refusal = await api(alice, "POST", "/members/bob/password-resets")
    problem(api_refusal, 429, "rate_limited")
    assert "at most 1 reset in 3 minutes" in api_refusal.json()["message"]
    assert len(outbox.messages()) == 1


async def test_the_member_page_refuses_a_limit_it_does_not_know(alice: Browser) -> None:
    named = await alice.get("/admin/members/bob", params={"wait": "60", "limit": "hour-admin"})
    assert "at most 15 resets an hour by you" in text_of(named, "reset-wait")
    for limit in ("week-admin", "3min-everyone", "3min", "-"):
        page = await alice.get("/admin/members/bob", params={"wait": "60", "limit": limit})
        assert page.status_code == 400, limit
