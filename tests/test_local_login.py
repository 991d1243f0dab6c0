"""`/login` and `/login/change` through the real app over ASGI, each browser from a client
address of its own: a stranger's failures lock out the stranger's address, not the owner; a
client address past its limit is refused before any hash is computed; the hashing itself is
bounded; crafted fields answer 400, never 500; the change form carries a proof of the sign-in,
not the password, and a proof that is expired, forged or spent is refused; and the session a
sign-in opens keeps its method, browser and address, never the user agent itself."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlencode

import httpx2 as httpx
import pytest
from sqlalchemy import func, select

from identity.admin import passwords
from identity.admin.errors import SignInExpired, SignInFailed
from identity.admin.local_login import CHANGE_SECONDS
from identity.app import create_app
from identity.crypto import Mac
from identity.db import Database
from identity.models import Base, LocalPassword, LocalPasswordTry, MemberSession
from identity.settings import Settings
from tests.helpers.admin_rows import (
    CODE,
    NOW,
    OWNER,
    OWNER_PASSWORD,
    STRANGER,
    TENANT,
    Person,
    add_people,
    add_tenant,
    give_password,
)
from tests.helpers.marketplace_client import SECRET_KEY
from tests.helpers.simulator_world import login_form
from tests.helpers.stack import Stack

BOB = f"bob@{CODE}"
FRESH = f"fresh@{CODE}"
"""A member whose password is an initial one: signing in leads to the change form."""
CHROME_ON_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Marker/5d1c7e"
)
FromAddress = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def local_accounts(db: Database) -> Database:
    """acme with bob and off (disabled) holding OWNER_PASSWORD, fresh holding it as an initial
    password (to be changed), and nopass without one."""
    await add_tenant(db)
    await add_people(
        db, Person("bob"), Person("fresh"), Person("nopass"), Person("off", enabled=False)
    )
    await give_password(db, "bob")
    await give_password(db, "fresh", must_change=True)
    await give_password(db, "off")
    return db


@pytest.fixture
def limits() -> dict[str, Any]:
    """Settings a test changes before `from_address` builds the app (by default, a per-address
    limit too wide to matter)."""
    return {"password_tries_per_minute_per_address": 1000}


@pytest.fixture
async def from_address(
    settings: Settings, local_accounts: Database, limits: dict[str, Any]
) -> AsyncIterator[FromAddress]:
    """Browsers on one app, each from its own client address: `from_address(STRANGER)`."""
    app = create_app(settings.model_copy(update=limits))
    opened: list[httpx.AsyncClient] = []

    def browser(address: str = OWNER) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        client = httpx.AsyncClient(transport=transport, base_url="https://identity.example.com")
        opened.append(client)
        return client

    yield browser
    for client in opened:
        await client.aclose()
    await app.state.db.dispose()


async def form(browser: httpx.AsyncClient) -> dict[str, str]:
    """The sign-in form's hidden fields (its CSRF value; the cookie goes to the browser)."""
    page = await browser.get("/login")
    assert page.status_code == 200
    return login_form(page.text).inputs


async def sign_in(
    browser: httpx.AsyncClient, password: str, account: str = BOB, **extra: str
) -> httpx.Response:
    fields = {**await form(browser), "account": account, "password": password, **extra}
    return await browser.post("/login", data=fields)


def error_code(page: httpx.Response) -> str:
    """The page's error, as the member reads it (English half)."""
    start = page.text.index('id="error"')
    return page.text[start : page.text.index("</p>", start)]


# --- the lockout is not a weapon ----------------------------------------------------------------


async def test_a_strangers_failures_lock_out_the_stranger_not_the_owner(
    from_address: FromAddress,
) -> None:
    stranger = from_address(STRANGER)
    for n in range(6):
        assert (await sign_in(stranger, f"Guess-{n}-x")).status_code == 401
    owner = await sign_in(from_address(OWNER), OWNER_PASSWORD)
    assert owner.status_code == 303 and owner.headers["location"] == "/sso/me", owner.text
    # The stranger's address is locked out of bob's account, even with the right password.
    assert (await sign_in(stranger, OWNER_PASSWORD)).status_code == 401


# --- per-address throttle and bounded hashing ---------------------------------------------------


@pytest.mark.parametrize("limits", [{"password_tries_per_minute_per_address": 9}])
async def test_tries_past_the_address_burst_are_429_before_any_hash(
    from_address: FromAddress, verifications: list[str]
) -> None:
    stranger = from_address(STRANGER)
    for n in range(3):
        assert (await sign_in(stranger, f"Guess-{n}-x")).status_code == 401
    assert len(verifications) == 3
    refused = await sign_in(stranger, "x")
    assert refused.status_code == 429, refused.text
    assert 1 <= int(refused.headers["retry-after"]) <= 7  # a try every 60/9 s
    assert "Too many sign-in attempts" in error_code(refused)
    assert len(verifications) == 3  # refused before any hash
    assert (
        await sign_in(from_address(OWNER), OWNER_PASSWORD)
    ).status_code == 303  # another address


@pytest.mark.parametrize("limits", [{"password_tries_per_minute_per_address": 10}])
async def test_a_member_who_mistypes_is_not_held_up_by_the_address_limit(
    from_address: FromAddress,
) -> None:
    """The default limit (3 at once): right passwords give their tries back, and a change the
    policy refuses computes no hash, so a person's stumbles fit."""
    fresh = from_address()
    for typo in ("Owner-Pass-2042", "owner-pass-2024"):
        assert (await sign_in(fresh, typo, FRESH)).status_code == 401
    changing = await sign_in(fresh, OWNER_PASSWORD, FRESH)
    assert changing.status_code == 200 and 'id="change-password"' in changing.text
    for new, again in (("weak", "weak"), ("Own-Choice-7", "Own-Choice-8"), ("Own-Choice-7",) * 2):
        fields = login_form(changing.text).inputs
        changing = await fresh.post("/login/change", data={**fields, "new": new, "again": again})
    assert changing.status_code == 303, changing.text
    assert (await sign_in(fresh, "Own-Choice-7", FRESH)).status_code == 303


async def test_behind_the_trusted_proxy_each_forwarded_address_has_its_own_limit(
    stack: Stack, local_accounts: Database
) -> None:
    """identity as `identity serve` runs it: the peer, 127.0.0.1, is in the default
    `FORWARDED_ALLOW_IPS`, so the address counted is the one `X-Forwarded-For` names."""
    async with httpx.AsyncClient(base_url=stack.identity, timeout=30) as http:
        fields = {**await form(http), "account": BOB, "password": "Guess-1-x"}

        async def post(address: str) -> int:
            headers = {"X-Forwarded-For": address}
            return (await http.post("/login", data=fields, headers=headers)).status_code

        assert [await post("198.51.100.1") for _ in range(4)] == [401, 401, 401, 429]
        assert await post("198.51.100.2") == 401


@pytest.fixture
def in_flight(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The most hash verifications seen running at once (one number, updated)."""
    most, lock, running = [0], threading.Lock(), [0]
    real: Callable[..., Any] = passwords.HASHER.verify_and_update

    def counting(password: str, password_hash: str) -> Any:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            return real(password, password_hash)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(passwords.HASHER, "verify_and_update", counting)
    return most


@pytest.mark.parametrize(
    "limits", [{"password_hashes_in_parallel": 1, "password_hash_wait_seconds": 0}]
)
async def test_hashing_is_bounded_and_a_try_finding_no_slot_is_503_uncounted(
    from_address: FromAddress, local_accounts: Database, in_flight: list[int]
) -> None:
    strangers = [from_address(f"198.51.100.{n}") for n in range(1, 7)]
    ready = [await form(b) for b in strangers]
    answers = await asyncio.gather(
        *(
            b.post("/login", data={**fields, "account": BOB, "password": "Guess-1-x"})
            for b, fields in zip(strangers, ready, strict=True)
        )
    )
    statuses = sorted(a.status_code for a in answers)
    assert in_flight == [1]
    assert 401 in statuses and 503 in statuses and set(statuses) == {401, 503}, statuses
    for busy in (a for a in answers if a.status_code == 503):
        assert busy.headers["retry-after"] == "1" and "busy" in error_code(busy)
    async with local_accounts.read() as s:
        counted = await s.scalar(select(func.sum(LocalPasswordTry.failed_tries)))
    assert counted == statuses.count(401)  # a try refused for want of a slot counts nothing


# --- crafted input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        ("/login", "account", f"bob\x00@{CODE}"),
        ("/login", "account", f"bob@{CODE}\x00"),
        ("/login", "next", "/sso/me\x00"),
        ("/login", "app", "APP-1\x1f"),
        ("/login/change", "account", f"bob\x00@{CODE}"),
        ("/login/app", "app", "APP-1\x00"),
        ("/login/app", "tenant", f"{TENANT}\x00"),
    ],
)
async def test_a_control_character_in_a_field_is_400(
    from_address: FromAddress, path: str, field: str, value: str
) -> None:
    browser = from_address()
    fields = {
        **await form(browser),
        "account": BOB,
        "password": OWNER_PASSWORD,
        "current": OWNER_PASSWORD,
        "new": "Own-Choice-7",
        "again": "Own-Choice-7",
        field: value,
    }
    answer = await browser.post(path, data=fields)
    assert answer.status_code == 400, answer.text
    assert 'id="error"' in answer.text and "__Host-identity_session" not in browser.cookies


@pytest.mark.parametrize("sent", ["repeated", "multipart", "large", "many"])
async def test_a_form_that_cannot_be_read_as_one_is_400(
    from_address: FromAddress, sent: str
) -> None:
    """A field sent twice (which would count?), a multipart form, more than 16 KiB or more
    than 12 fields: the sign-in page again, nothing checked, no session."""
    browser = from_address()
    fields = {**await form(browser), "account": BOB, "password": OWNER_PASSWORD}
    request: dict[str, Any] = {
        "repeated": {
            "content": urlencode([*fields.items(), ("account", BOB)]),
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        },
        "multipart": {"data": fields, "files": {"f": ("a.txt", b"x")}},
        "large": {"data": fields | {"next": "/" + "x" * 17_000}},
        "many": {"data": fields | {f"f{i}": "" for i in range(12)}},
    }[sent]
    answer = await browser.post("/login", **request)
    assert answer.status_code == 400, answer.text
    assert 'id="error"' in answer.text and "__Host-identity_session" not in browser.cookies


@pytest.mark.parametrize("expires", ["²", "9" * 5000, "-1", "1e9", ""])
async def test_a_pick_with_a_malformed_expiry_is_400(
    from_address: FromAddress, expires: str
) -> None:
    browser = from_address()
    fields = {**await form(browser), "tenant": TENANT, "user": "bob", "app": "APP-1"}
    fields |= {"set_at": NOW.isoformat(), "proof": "x", "expires": expires}
    answer = await browser.post("/login/app", data=fields)
    assert answer.status_code == 400, answer.text
    assert 'id="error"' in answer.text


# --- the change form carries the sign-in, not the password ---------------------------------------

NEW = {"new": "Own-Choice-7", "again": "Own-Choice-7"}


async def change_form(browser: httpx.AsyncClient) -> dict[str, str]:
    """fresh signs in with the initial password: the change form's fields (its proof)."""
    page = await sign_in(browser, OWNER_PASSWORD, FRESH)
    assert page.status_code == 200 and 'id="change-password"' in page.text, page.text
    form_ = login_form(page.text)
    assert form_.action == "/login/change"
    return form_.inputs


def still_initial(page: httpx.Response) -> None:
    """Refused with the sign-in form again, saying the sign-in expired."""
    assert page.status_code == 401, page.text
    assert SignInExpired.en in error_code(page) and 'id="sign-in"' in page.text


async def test_the_change_form_asks_only_for_the_new_password_twice(
    from_address: FromAddress, verifications: list[str]
) -> None:
    browser = from_address()
    fields = await change_form(browser)
    page = (await browser.get("/login")).text  # nothing of the sign-in is in the form itself
    assert OWNER_PASSWORD not in page
    assert set(fields) == {
        *("csrf", "account", "tenant", "user", "set_at", "expires", "proof", "new", "again")
    }
    assert fields["new"] == fields["again"] == "" and fields["account"] == FRESH
    verifications.clear()
    changed = await browser.post("/login/change", data={**fields, **NEW})
    assert changed.status_code == 303 and changed.headers["location"] == "/sso/me"
    assert len(verifications) == 1  # the new password against the initial one, nothing more
    assert (await browser.get("/sso/session")).json()["userName"] == "fresh"


@pytest.mark.parametrize(
    "forged",
    [
        {"proof": "0" * 64},
        {"proof": ""},
        {"user": "bob"},  # someone else's account, with fresh's proof
        {"tenant": "T-OTHER"},
        {"set_at": "2026-12-01T09:00:01"},  # another password
        {"expires": "99999999999"},  # a longer life than it was given
        {"set_at": "not a time"},
    ],
    ids=["mac", "no-mac", "user", "tenant", "set_at", "expires", "bad-set_at"],
)
async def test_a_forged_proof_is_refused_and_changes_nothing(
    from_address: FromAddress, verifications: list[str], forged: dict[str, str]
) -> None:
    browser = from_address()
    fields = await change_form(browser)
    verifications.clear()
    still_initial(await browser.post("/login/change", data={**fields, **forged, **NEW}))
    assert verifications == []  # no hash for a forged proof
    assert (await sign_in(from_address(), OWNER_PASSWORD, FRESH)).status_code == 200  # as before
    assert (await sign_in(from_address(), OWNER_PASSWORD)).status_code == 303  # bob's untouched


async def test_an_expired_proof_is_refused(
    from_address: FromAddress, local_accounts: Database
) -> None:
    """A proof signed by identity's own key, whose time ran out: refused all the same."""
    browser = from_address()
    fields = await change_form(browser)
    assert int(fields["expires"]) - CHANGE_SECONDS <= time.time() + 1
    expired = str(int(time.time()) - 1)
    message = "|".join(
        ["change", fields["tenant"], fields["user"], fields["set_at"], fields["csrf"], expired]
    )
    proof = Mac(SECRET_KEY, "local-login").sign(message)
    still_initial(
        await browser.post(
            "/login/change", data={**fields, "expires": expired, "proof": proof, **NEW}
        )
    )
    async with local_accounts.read() as s:
        fresh = LocalPassword.user_name == "fresh"
        assert await s.scalar(select(LocalPassword.must_change).where(fresh)) is True


async def test_a_proof_works_once_in_its_own_browser_and_for_its_own_form(
    from_address: FromAddress,
) -> None:
    browser = from_address()
    fields = await change_form(browser)
    # Another browser (another CSRF cookie) cannot post it.
    other = from_address()
    await form(other)
    refused = await other.post("/login/change", data={**fields, **NEW})
    assert refused.status_code == 403, refused.text
    # A proof for the change cannot pick an app (a session without the change).
    picked = await browser.post("/login/app", data={**fields, "app": "APP-1"})
    assert picked.status_code == 401 and SignInFailed.en in error_code(picked)
    assert (await browser.post("/login/change", data={**fields, **NEW})).status_code == 303
    # Spent: the password it names is no longer the member's.
    again = {"new": "Other-Choice-8", "again": "Other-Choice-8"}
    still_initial(await browser.post("/login/change", data={**fields, **again}))


# --- what the session keeps of the sign-in --------------------------------------------------------


async def test_the_session_keeps_the_method_browser_and_address_never_the_user_agent(
    from_address: FromAddress, local_accounts: Database
) -> None:
    browser = from_address()
    browser.headers["User-Agent"] = CHROME_ON_WINDOWS
    assert (await sign_in(browser, OWNER_PASSWORD)).status_code == 303
    async with local_accounts.read() as s:
        kept = (
            await s.execute(
                select(
                    MemberSession.sign_in_method,
                    MemberSession.browser,
                    MemberSession.platform,
                    MemberSession.address,
                )
            )
        ).one()
        assert tuple(kept) == ("password", "Chrome 131", "Windows 10", OWNER)
        for table in Base.metadata.sorted_tables:  # the user agent is nowhere
            rows = (await s.execute(select(table))).all()
            assert "Marker/5d1c7e" not in repr(rows), table.name
            assert "AppleWebKit" not in repr(rows), table.name
