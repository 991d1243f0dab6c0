"""Logout end to end (contract §5.2 step 9): a confirmation page, a CSRF-protected POST that
ends identity's session, then the auth centre's logout, which ends its SSO session and sends
the browser back. identity and the simulator run as separate processes over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx2 as httpx
import pytest
from sqlalchemy import update

from identity.db import Database
from identity.models import Authorisation, MemberSession
from identity.sessions import hash_id
from tests.helpers.simulator_world import login_form
from tests.helpers.stack import Browser, Stack, assert_refused

SESSION = "identity_session"
SIM_SSO = "sim_sso"


@pytest.fixture
async def bob(acme: Stack) -> AsyncIterator[Browser]:
    """A browser signed in as bob, at identity and at the auth centre."""
    b = acme.browser()
    landed = await b.flow_a("bob@acme", "bob-pw")
    assert landed.status_code == 200, landed.text
    assert b.cookie(SESSION) and b.cookie(SIM_SSO)
    yield b
    await b.close()


async def row_exists(db: Database, raw_id: str) -> bool:
    async with db.read() as session:
        return await session.get(MemberSession, hash_id(raw_id)) is not None


async def confirmation(browser: Browser, **params: str) -> dict[str, str]:
    """GET /sso/logout: the page's form fields (it must post to /sso/logout)."""
    page = await browser.get("/sso/logout", params=params)
    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store"
    form = login_form(page.text)
    assert form.action == "/sso/logout"
    assert 'method="post"' in page.text
    return form.inputs


async def assert_still_signed_in(browser: Browser, db: Database, raw_id: str) -> None:
    assert browser.cookie(SESSION) == raw_id
    assert await row_exists(db, raw_id)
    assert (await browser.session()).status_code == 200
    assert browser.cookie(SIM_SSO)


async def test_the_logout_page_asks_and_changes_nothing(bob: Browser, db: Database) -> None:
    raw_id = bob.cookie(SESSION)
    assert raw_id
    fields = await confirmation(bob)
    assert set(fields) == {"csrf"} and len(fields["csrf"]) == 64
    assert fields["csrf"] == (await bob.session()).json()["csrfToken"]
    await assert_still_signed_in(bob, db, raw_id)


async def test_logout_ends_both_sessions_and_lands_on_the_logged_out_page(
    acme: Stack, bob: Browser, db: Database
) -> None:
    raw_id = bob.cookie(SESSION)
    assert raw_id
    fields = await confirmation(bob)
    posted = await bob.http.post(
        acme.identity + "/sso/logout", data=fields, headers={"Origin": acme.identity}
    )
    assert posted.status_code == 303, posted.text
    back = acme.identity + "/sso/logged-out"
    assert posted.headers["location"] == (
        f"{acme.sim}/api/v1/logout?{urlencode({'redirect_url': back})}"
    )
    assert posted.headers["set-cookie"].startswith(f'{SESSION}="";')
    assert not await row_exists(db, raw_id)  # ended before the browser reaches the auth centre

    landed = await bob.follow(posted)
    assert str(landed.url) == back
    assert landed.status_code == 200
    assert 'id="signed-out"' in landed.text and "You have signed out" in landed.text
    assert bob.cookie(SESSION) is None
    assert bob.cookie(SIM_SSO) is None  # the auth centre's SSO session is cleared too
    assert (await bob.session()).status_code == 401
    async with httpx.AsyncClient(cookies={SESSION: raw_id}) as replay:
        assert (await replay.get(acme.identity + "/sso/session")).status_code == 401
    # Signing in again needs the password: the auth centre forgot the member.
    page = await bob.get(
        acme.sim + "/unified-login/portal-login",
        params={"ind": "UNOP", "appId": acme.scenario.app_id},
    )
    assert page.status_code == 200 and 'name="password"' in page.text


async def test_logout_with_the_csrf_header(acme: Stack, bob: Browser, db: Database) -> None:
    """Front ends send the token from `/sso/session` as `X-CSRF-Token`."""
    raw_id = bob.cookie(SESSION)
    assert raw_id
    token = (await bob.session()).json()["csrfToken"]
    posted = await bob.http.post(acme.identity + "/sso/logout", headers={"X-CSRF-Token": token})
    assert posted.status_code == 303
    assert posted.headers["location"].startswith(acme.sim + "/api/v1/logout?")
    assert not await row_exists(db, raw_id)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({}, id="no-token"),
        pytest.param({"csrf": ""}, id="empty"),
        pytest.param({"csrf": "0" * 64}, id="wrong"),
        pytest.param({"csrf": "another-session"}, id="another-sessions-token"),
    ],
)
async def test_logout_without_the_right_csrf_token_is_refused(
    acme: Stack, bob: Browser, db: Database, fields: dict[str, str]
) -> None:
    raw_id = bob.cookie(SESSION)
    assert raw_id
    if fields.get("csrf") == "another-session":
        other = acme.browser()
        try:
            await other.flow_a("alice@acme", "alice-pw")
            fields = {"csrf": (await other.session()).json()["csrfToken"]}
        finally:
            await other.close()
    refused = await bob.post("/sso/logout", data=fields)
    assert_refused(refused, "csrf_failed")
    assert len(bob.history) and bob.history[-1].url.path == "/sso/logout"
    await assert_still_signed_in(bob, db, raw_id)


@pytest.mark.parametrize(
    "origin", ["https://evil.example.com", "null", "http://127.0.0.1:1", "http://localhost"]
)
async def test_logout_from_another_origin_is_refused(
    acme: Stack, bob: Browser, db: Database, origin: str
) -> None:
    raw_id = bob.cookie(SESSION)
    assert raw_id
    fields = await confirmation(bob)  # even with the right token
    refused = await bob.post("/sso/logout", data=fields, headers={"Origin": origin})
    assert_refused(refused, "csrf_failed")
    await assert_still_signed_in(bob, db, raw_id)


@pytest.mark.parametrize(
    "target", ["https://evil.example.com", "//evil.example.com/", "javascript:alert(1)"]
)
async def test_logout_refuses_a_redirect_elsewhere(
    acme: Stack, bob: Browser, db: Database, target: str
) -> None:
    raw_id = bob.cookie(SESSION)
    assert raw_id
    fields = await confirmation(bob, redirect_url=target)
    assert fields["redirect_url"] == target  # carried by the form, checked by the POST
    refused = await bob.post("/sso/logout", data=fields)
    assert_refused(refused, "redirect_not_allowed")
    await assert_still_signed_in(bob, db, raw_id)
    # Also as a query parameter of the POST.
    refused = await bob.post(
        "/sso/logout", params={"redirect_url": target}, data={"csrf": fields["csrf"]}
    )
    assert_refused(refused, "redirect_not_allowed")
    await assert_still_signed_in(bob, db, raw_id)


@pytest.mark.parametrize("path", ["/sso/me?bye=1", "/sso/logged-out?from=app"])
async def test_logout_returns_to_an_address_on_this_service(
    acme: Stack, bob: Browser, path: str
) -> None:
    """Both as an absolute URL on identity's origin and as a relative path."""
    for target in (acme.identity + path, path):
        if bob.cookie(SESSION) is None:
            await bob.flow_a("bob@acme", "bob-pw")
        fields = await confirmation(bob, redirect_url=target)
        landed = await bob.post("/sso/logout", data=fields)
        assert str(landed.url) == acme.identity + path, (target, landed.text)
        assert bob.cookie(SIM_SSO) is None
        assert bob.cookie(SESSION) is None


async def test_logout_when_not_signed_in(acme: Stack) -> None:
    b = acme.browser()
    try:
        page = await b.get("/sso/logout")
        assert page.status_code == 200 and 'id="signed-out"' in page.text
        posted = await b.http.post(acme.identity + "/sso/logout")
        assert posted.status_code == 303
        assert posted.headers["location"] == acme.identity + "/sso/logged-out"
    finally:
        await b.close()


async def test_a_stale_cookie_is_signed_out_without_a_csrf_token(acme: Stack, db: Database) -> None:
    b = acme.browser()
    try:
        b.http.cookies.set(SESSION, "a-session-that-does-not-exist", domain="127.0.0.1")
        posted = await b.http.post(acme.identity + "/sso/logout")
        assert posted.status_code == 303
        assert posted.headers["location"] == acme.identity + "/sso/logged-out"
        assert b.cookie(SESSION) is None
    finally:
        await b.close()


async def test_a_member_who_lost_access_still_ends_the_auth_centres_session(
    acme: Stack, bob: Browser, db: Database
) -> None:
    """bob is disabled while signed in: his session is gone, yet signing out must still reach
    the auth centre's logout, or its SSO session would sign him straight back in elsewhere."""
    fields = await confirmation(bob)
    raw_id = bob.cookie(SESSION)
    assert raw_id
    # Make the row outlive the sync's end_access, as if the member lost access another way.
    async with db.transaction() as session:
        await session.execute(
            update(Authorisation).where(Authorisation.user_name == "bob").values(enabled=False)
        )
    assert (await bob.session()).status_code == 401
    bob.http.cookies.set(SESSION, raw_id, domain="127.0.0.1")
    posted = await bob.http.post(acme.identity + "/sso/logout", data=fields)
    assert posted.status_code == 303
    assert posted.headers["location"].startswith(acme.sim + "/api/v1/logout?redirect_url=")


async def test_a_malformed_csrf_token_is_refused_not_an_error(bob: Browser, db: Database) -> None:
    raw_id = bob.cookie(SESSION)
    assert raw_id
    assert_refused(await bob.post("/sso/logout", data={"csrf": "é" * 64}), "csrf_failed")
    await assert_still_signed_in(bob, db, raw_id)


async def test_pages_cannot_be_framed(bob: Browser) -> None:
    for path in ("/sso/me", "/sso/logout"):
        page = await bob.get(path)
        assert page.status_code == 200
        assert page.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


# --- only small URL-encoded forms -----------------------------------------------------------


async def test_a_multipart_logout_is_refused_and_changes_nothing(
    bob: Browser, db: Database
) -> None:
    """Multipart parsers spool file parts of any size to disk: logout does not take them."""
    raw_id = bob.cookie(SESSION)
    assert raw_id
    fields = await confirmation(bob)
    refused = await bob.post(
        "/sso/logout", data=fields, files={"upload": ("big.bin", b"x" * 100_000)}
    )
    assert_refused(refused, "form_not_accepted")
    await assert_still_signed_in(bob, db, raw_id)


def streamed(head: bytes, size: int, sent: list[int]) -> AsyncIterator[bytes]:
    """A request body of `size` bytes after `head`, counting what the server pulled."""

    async def chunks() -> AsyncIterator[bytes]:
        yield head
        sent[0] += len(head)
        for _ in range(size // 65536):
            yield b"x" * 65536
            sent[0] += 65536

    return chunks()


async def test_a_multipart_logout_is_refused_before_its_body_is_read(
    client: httpx.AsyncClient,
) -> None:
    sent = [0]
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n\r\n'
    ).encode()
    refused = await client.post(
        "/sso/logout",
        content=streamed(head, 50 * 1024 * 1024, sent),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert_refused(refused, "form_not_accepted")
    assert sent[0] < 1024 * 1024


async def test_an_oversized_logout_form_is_refused_unread(client: httpx.AsyncClient) -> None:
    sent = [0]
    refused = await client.post(
        "/sso/logout",
        content=streamed(b"csrf=", 50 * 1024 * 1024, sent),  # chunked: no Content-Length
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_refused(refused, "bad_request")
    assert sent[0] < 1024 * 1024
    declared = await client.post("/sso/logout", data={"csrf": "a" * 20_000})
    assert_refused(declared, "bad_request")
