"""A unified-login (Flow A) callback in a browser signed in as another member asks before it
switches: the callback carries no `state`, so anyone can make a signed-in browser open their
own callback link (login CSRF). Identity and the simulator as processes, over real HTTP.

The code is exchanged once, when the callback is opened (the member it signs in must be known to
tell whether they differ); the page's form carries the session's CSRF token and the pending
login sealed to that session, and only its POST opens the new session."""

from __future__ import annotations

import base64
import html
import time
from dataclasses import replace
from urllib.parse import urlencode, urljoin

import httpx2 as httpx
from sqlalchemy import func, select

from identity.db import Database
from identity.models import MemberSession
from identity.simulator import sender as events
from identity.sso.switching import PendingLogin, PendingSeal
from tests.helpers.marketplace_client import SECRET_KEY
from tests.helpers.simulator_world import login_form
from tests.helpers.stack import Browser, Browsers, Stack, assert_refused

SESSION = "identity_session"


async def code_of(browsers: Browsers, account: str, password: str) -> str:
    """Someone else's unused Flow A callback link (signed in at the auth centre elsewhere)."""
    elsewhere = browsers()
    query = await elsewhere.code_for(account, password)
    return f"{elsewhere.stack.identity}/sso/callback/{elsewhere.stack.scenario.app_id}?" + (
        urlencode(query)
    )


async def signed_in(browsers: Browsers, account: str, password: str) -> Browser:
    browser = browsers()
    landed = await browser.flow_a(account, password)
    assert landed.status_code == 200, landed.text
    return browser


async def whom(browser: Browser) -> str | None:
    described = await browser.session()
    return described.json()["userName"] if described.status_code == 200 else None


async def session_rows(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(MemberSession)) or 0)


def asked(page: httpx.Response) -> dict[str, str]:
    """The confirmation page: the form's fields and where it posts."""
    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store"
    text = html.unescape(page.text)
    assert 'id="switch-account"' in page.text, page.text
    form = login_form(page.text)
    assert form.action and set(form.inputs) == {"csrf", "pending"}
    return {"action": urljoin(str(page.url), form.action), **form.inputs, "text": text}


async def test_a_callback_for_another_member_asks_first_and_switches_only_when_confirmed(
    acme: Stack, browsers: Browsers, db: Database
) -> None:
    alice = await signed_in(browsers, "alice@acme", "alice-pw")
    alice_cookie = alice.cookie(SESSION)
    link = await code_of(browsers, "bob@acme", "bob-pw")
    spent_before = (await acme.sim_stats())["grants"].get("authorization_code", 0)

    form = asked(await alice.get(link))
    assert "alice@acme" in form["text"] and "bob@acme" in form["text"]
    assert "继续" in form["text"] and "Continue as" in form["text"]
    assert await whom(alice) == "alice"  # nothing changed yet
    assert alice.cookie(SESSION) == alice_cookie
    assert await session_rows(db) == 1  # no session for bob is waiting anywhere
    # The code was exchanged once, now: the same link is spent for anyone else.
    assert (await acme.sim_stats())["grants"]["authorization_code"] == spent_before + 1
    assert_refused(await browsers().get(link), "code_invalid")

    confirmed = await alice.http.post(
        form["action"], data={"csrf": form["csrf"], "pending": form["pending"]}
    )
    assert confirmed.status_code == 303, confirmed.text
    assert confirmed.headers["location"] == "/sso/me"
    assert await whom(alice) == "bob"
    assert alice.cookie(SESSION) != alice_cookie
    async with httpx.AsyncClient(cookies={SESSION: alice_cookie or ""}) as old:
        assert (await old.get(acme.identity + "/sso/session")).status_code == 401
    assert await session_rows(db) == 1
    # The form works once: posted again, it is refused and changes nothing.
    again = await alice.http.post(
        form["action"], data={"csrf": form["csrf"], "pending": form["pending"]}
    )
    assert_refused(again, "switch_unconfirmed")
    assert await whom(alice) == "bob"


async def test_staying_keeps_the_session_and_the_same_member_goes_straight_through(
    acme: Stack, browsers: Browsers
) -> None:
    alice = await signed_in(browsers, "alice@acme", "alice-pw")
    form = asked(await alice.get(await code_of(browsers, "bob@acme", "bob-pw")))
    assert 'id="stay"' in form["text"]
    stayed = await alice.get("/sso/me")
    assert stayed.status_code == 200 and await whom(alice) == "alice"
    # alice's own code, from elsewhere: no question, a new cookie for the same session.
    landed = await alice.get(await code_of(browsers, "alice@acme", "alice-pw"))
    assert landed.status_code == 200 and landed.url.path == "/sso/me"
    assert await whom(alice) == "alice"


async def test_a_member_who_would_be_refused_is_refused_without_asking(
    acme: Stack, browsers: Browsers
) -> None:
    alice = await signed_in(browsers, "alice@acme", "alice-pw")
    link = await code_of(browsers, "bob@acme", "bob-pw")
    await events.disable_member(acme.sender, acme.tenant("acme"), "bob")
    assert_refused(await alice.get(link), "member_disabled")
    assert await whom(alice) == "alice"


async def test_a_confirmation_is_refused_without_the_sessions_token_or_for_another_session(
    acme: Stack, browsers: Browsers, db: Database
) -> None:
    alice = await signed_in(browsers, "alice@acme", "alice-pw")
    form = asked(await alice.get(await code_of(browsers, "bob@acme", "bob-pw")))
    other = await signed_in(browsers, "alice@acme", "alice-pw")  # alice in a second browser
    other_csrf = (await other.session()).json()["csrfToken"]
    tampered = form["pending"][:-4] + ("AAAA" if not form["pending"].endswith("AAAA") else "BBBB")
    attempts = [
        (alice, {"csrf": "forged", "pending": form["pending"]}),
        (alice, {"pending": form["pending"]}),
        (alice, {"csrf": form["csrf"], "pending": tampered}),
        (alice, {"csrf": form["csrf"]}),
        (other, {"csrf": other_csrf, "pending": form["pending"]}),  # sealed to alice's first
    ]
    for browser, fields in attempts:
        refused = await browser.http.post(form["action"], data=fields)
        assert_refused(refused, "switch_unconfirmed")
        assert await whom(browser) == "alice"
    bare = httpx.AsyncClient()
    try:
        refused = await bare.post(form["action"], data={"csrf": form["csrf"], "pending": "x"})
        assert_refused(refused, "switch_unconfirmed")
    finally:
        await bare.aclose()
    foreign = {"Origin": "https://evil.example"}
    fields = {"csrf": form["csrf"], "pending": form["pending"]}
    refused = await alice.http.post(form["action"], data=fields, headers=foreign)
    assert_refused(refused, "csrf_failed")
    assert await whom(alice) == "alice" and await session_rows(db) == 2


def test_a_pending_login_opens_only_for_its_session_unread_and_until_it_expires() -> None:
    seal = PendingSeal(SECRET_KEY)
    pending = PendingLogin(
        tenant_id="t-acme-0001",
        app_id="app",
        user_name="bob",
        user_id="h-2",
        access_token="the-access-token",
        refresh_token="the-refresh-token",
        token_expires=int(time.time()) + 7200,
        next="/sso/me",
        expires=int(time.time()) + 60,
    )
    sealed = seal.seal("session-a", pending)
    assert seal.unseal("session-a", sealed) == pending
    assert seal.unseal("session-b", sealed) is None
    assert PendingSeal("another-master-key-0123").unseal("session-a", sealed) is None
    opened = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
    assert b"the-access-token" not in opened and b"bob" not in opened
    late = replace(pending, expires=int(time.time()) - 1)
    assert seal.unseal("session-a", seal.seal("session-a", late)) is None
    assert seal.unseal("session-a", "not-base64!") is None
