"""A way on from every page a member lands on: the signed-in page lists the apps the member may
use now (the eligibility rule) with where each one's sign-in starts, and nothing else; a member
who is not an admin gets a page of their own at /admin, with a way to sign in as someone else
and a way to their own account; the console's header leads to the admin's account and out.

Over the real app in process (the browser tests, tests/test_browser_way_around.py, click
through the same pages in Chromium)."""

from __future__ import annotations

import html
import secrets
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
import pytest
from sqlalchemy import update

from identity.db import Database, utcnow
from identity.models import ACTIVE, AppCredential, Authorisation, MemberSession, SessionApp
from identity.provider import clients
from identity.sessions import store as sessions
from identity.sessions.browser import Cookies
from tests.helpers.admin_rows import APP, CODE, STAMP, TENANT, Person, add_people, add_tenant

BASE = "https://identity.example.com"
COOKIE = Cookies.for_service(BASE, True).session
NO_CLIENT, SECRET_APP, DISABLED_APP = "APP-2", "APP-3", "APP-4"
"""Beside APP: an app no client is registered for, one bob is not authorised for, and one
his authorisation for is disabled."""


class Items(HTMLParser):
    """The signed-in page's apps: per `<li>` of `#apps`, its text and its link (or None)."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[dict[str, str | None]] = []
        self._in_list = False
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "ul" and found.get("id") == "apps":
            self._in_list = True
        elif self._in_list and tag == "li":
            self.items.append({"app": found.get("data-app"), "text": "", "href": None})
        elif self._in_list and tag == "a" and self.items:
            self.items[-1]["href"] = found.get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag == "ul" and self._in_list:
            self._in_list = False

    def handle_data(self, data: str) -> None:
        if self._in_list and self.items:
            self.items[-1]["text"] = f"{self.items[-1]['text']} {data.strip()}".strip()


def apps_on(page: str) -> list[dict[str, str | None]]:
    parser = Items()
    parser.feed(page)
    return parser.items


async def _world(db: Database) -> None:
    """acme's APP plus three more apps, bob authorised as the docstring above says, and the
    clients the ISV registered: two of APP (one with a sign-in address), one of each app bob
    may not use."""
    await add_tenant(db)
    await add_people(db, Person("alice", role="admin"), Person("bob"))
    async with db.transaction() as session:
        for app_id in (NO_CLIENT, SECRET_APP, DISABLED_APP):
            session.add(
                AppCredential(
                    tenant_id=TENANT,
                    app_id=app_id,
                    instance_id=f"I-{TENANT}",
                    client_id=f"client-{app_id}",
                    last_sync_time=STAMP,
                )
            )
        for app_id, user_name, enabled in (
            (NO_CLIENT, "bob", True),
            (SECRET_APP, "alice", True),
            (DISABLED_APP, "bob", False),
        ):
            session.add(
                Authorisation(
                    tenant_id=TENANT,
                    app_id=app_id,
                    user_name=user_name,
                    instance_id=f"I-{TENANT}",
                    role="user",
                    enabled=enabled,
                    state=ACTIVE,
                    last_sync_time=STAMP,
                )
            )
        for app_id, name, initiate, home in (
            (APP, "Shop 商城", "https://shop.example.com/login?from=identity", None),
            (APP, "Shop kiosk", None, None),
            (APP, "Shop web", None, "https://web.shop.example.com/start"),
            (SECRET_APP, "Payroll", "https://payroll.example.com/login", None),
            (DISABLED_APP, "Reports", "https://reports.example.com/login", None),
        ):
            host = urlsplit(initiate or "https://kiosk.example.com/").netloc
            await clients.add(
                session,
                clients.Registration(
                    app_id=app_id,
                    name=name,
                    redirect_uris=[f"https://{host}/callback"],
                    post_logout_redirect_uris=[],
                    backchannel_logout_uri=None,
                    initiate_login_uri=initiate,
                    public=False,
                    home_uri=home,
                ),
            )


async def _signed_in(db: Database, user_name: str, app_id: str = NO_CLIENT) -> str:
    """A session of the member holding `app_id`, written as rows; its raw cookie id."""
    raw_id = secrets.token_urlsafe(32)
    sid = secrets.token_urlsafe(24)
    async with db.transaction() as session:
        session.add(
            MemberSession(
                id_hash=sessions.hash_id(raw_id),
                sid=sid,
                tenant_id=TENANT,
                user_name=user_name,
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
        await session.flush()
        session.add(SessionApp(sid=sid, app_id=app_id))
    return raw_id


@pytest.fixture
async def world(db: Database) -> Database:
    await _world(db)
    return db


async def _get(client: httpx.AsyncClient, path: str, raw_id: str) -> httpx.Response:
    return await client.get(path, headers={"cookie": f"{COOKIE}={raw_id}"})


async def test_the_signed_in_page_lists_the_apps_the_member_may_use_with_their_sign_in(
    world: Database, client: httpx.AsyncClient
) -> None:
    bob = await _signed_in(world, "bob")
    page = await _get(client, "/sso/me", bob)
    assert page.status_code == 200, page.text
    items = apps_on(page.text)

    # APP's two clients (by name), then NO_CLIENT alone; never SECRET_APP or DISABLED_APP.
    names = [" ".join((item["text"] or "").split()[:2]) for item in items]
    assert [item["app"] for item in items] == [APP, APP, APP, NO_CLIENT]
    assert names == [
        "Shop kiosk",
        "Shop web",
        "Shop 商城",
        f"{NO_CLIENT} 未登记登录地址，请从应用自己的网址或云商店进入",
    ]
    kiosk, web, shop, bare = items
    assert web["href"] == "https://web.shop.example.com/start"  # its home: no hints to add
    assert shop["href"] is not None
    link = urlsplit(shop["href"])
    assert (link.scheme, link.netloc, link.path) == ("https", "shop.example.com", "/login")
    assert parse_qs(link.query) == {
        "from": ["identity"],  # the registered address's own query is kept
        "iss": [BASE],
        "login_hint": [f"bob@{CODE}"],
        "target_link_uri": ["https://shop.example.com/"],
    }
    for unlinked in (kiosk, bare):
        assert unlinked["href"] is None
        assert "No sign-in address is registered" in html.unescape(unlinked["text"] or "")
    assert "Payroll" not in page.text and "Reports" not in page.text
    assert SECRET_APP not in page.text and DISABLED_APP not in page.text


async def test_an_app_leaves_the_list_the_moment_the_member_may_no_longer_use_it(
    world: Database, client: httpx.AsyncClient
) -> None:
    bob = await _signed_in(world, "bob")
    bob_in = (Authorisation.user_name == "bob") & (Authorisation.app_id == APP)
    async with world.transaction() as session:
        await session.execute(update(Authorisation).where(bob_in).values(enabled=False))
    items = apps_on((await _get(client, "/sso/me", bob)).text)
    assert [item["app"] for item in items] == [NO_CLIENT]

    # Enabled again, but the app's instance frozen for the credential: gone as well.
    async with world.transaction() as session:
        await session.execute(update(Authorisation).where(bob_in).values(enabled=True))
        await session.execute(
            update(AppCredential)
            .where(AppCredential.app_id == APP)
            .values(instance_id="I-NEVER-BOUND")
        )
    items = apps_on((await _get(client, "/sso/me", bob)).text)
    assert [item["app"] for item in items] == [NO_CLIENT]


async def test_alice_sees_the_app_only_she_may_use(
    world: Database, client: httpx.AsyncClient
) -> None:
    alice = await _signed_in(world, "alice", APP)
    items = apps_on((await _get(client, "/sso/me", alice)).text)
    assert [(item["app"], item["href"]) for item in items] == [
        (APP, None),
        (APP, "https://web.shop.example.com/start"),
        (APP, items[2]["href"]),
        (SECRET_APP, "https://payroll.example.com/login?iss=https%3A%2F%2Fidentity.example.com"
         f"&login_hint=alice%40{CODE}&target_link_uri=https%3A%2F%2Fpayroll.example.com%2F"),
    ]  # fmt: skip
    assert (items[2]["href"] or "").startswith("https://shop.example.com/login?from=identity&")


async def test_a_member_who_is_not_an_admin_gets_a_page_of_their_own(
    world: Database, client: httpx.AsyncClient
) -> None:
    bob = await _signed_in(world, "bob")
    page = await _get(client, "/admin", bob)
    assert page.status_code == 403
    text = html.unescape(page.text)
    assert "<title>不是管理员 / Not an administrator" in text
    assert "无法完成" not in text and "Back to the console" not in text
    assert "This console is for your enterprise's administrators" in text
    assert f'id="userName" class="token">bob@{CODE}<' in text
    assert 'id="reason">forbidden<' in text  # the code stays what it was
    # Sign in as someone else: sign out (a POST with the session's CSRF token), then the
    # console's sign-in for the same enterprise; and the member's own page.
    form = text[text.index('<form method="post" action="/sso/logout">') :]
    form = form[: form.index("</form>")]
    assert 'name="redirect_url" value="/sso/login?tenant=T-ACME&next=%2Fadmin"' in form
    token = form.split('name="csrf" value="')[1].split('"')[0]
    assert token and "使用其他账号登录 / Sign in as someone else" in form
    assert 'id="my-account" href="/sso/me"' in text

    # The form works: it signs bob out and goes through the auth centre's logout to the
    # console's sign-in.
    fields = {"csrf": token, "redirect_url": "/sso/login?tenant=T-ACME&next=%2Fadmin"}
    out = await client.post(
        "/sso/logout", data=fields, headers={"cookie": f"{COOKIE}={bob}", "origin": BASE}
    )
    assert out.status_code == 303
    back = parse_qs(urlsplit(out.headers["location"]).query)["redirect_url"]
    assert back == [f"{BASE}/sso/login?tenant=T-ACME&next=%2Fadmin"]
    assert (await _get(client, "/sso/me", bob)).status_code == 401


async def test_other_refusals_keep_their_page(world: Database, client: httpx.AsyncClient) -> None:
    alice = await _signed_in(world, "alice", APP)
    other = await _get(client, "/admin?tenant=T-ELSEWHERE", alice)
    assert other.status_code == 403
    assert "无法完成 / Not done" in other.text and 'id="not-admin"' not in other.text
    assert 'id="reason">forbidden<' in other.text

    # The JSON API says what it always said.
    bob = await _signed_in(world, "bob")
    api = await _get(client, "/api/admin/members", bob)
    assert api.status_code == 403
    assert api.json() == {
        "error": "forbidden",
        "message": "You are not an administrator of this enterprise.",
    }


async def test_the_console_header_leads_to_the_admin_s_account_and_out(
    world: Database, client: httpx.AsyncClient
) -> None:
    alice = await _signed_in(world, "alice", APP)
    page = await _get(client, "/admin", alice)
    assert page.status_code == 200
    text = page.text
    menu = text[text.index('<details class="account-menu"') : text.index("</details>")]
    assert "<summary" in menu and "Alice" in menu
    assert f'id="admin-account">alice@{CODE}<' in menu
    assert 'href="/sso/me"' in menu and '我的账号 <span class="en">My account</span>' in menu
    assert '<form method="post" action="/sso/logout">' in menu
    token = menu.split('name="csrf" value="')[1].split('"')[0]
    out = await client.post(
        "/sso/logout", data={"csrf": token}, headers={"cookie": f"{COOKIE}={alice}", "origin": BASE}
    )
    assert out.status_code == 303
    assert (await _get(client, "/admin", alice)).status_code == 303  # signed out: to sign in
