"""`/login` and `/login/change` through the real app over ASGI, each browser from a client
address of its own: a stranger's failures lock out the stranger's address, not the owner; a
client address past its limit is refused before any hash is computed; the hashing itself is
bounded; crafted fields answer 400, never 500; and every refused change reads the same and
costs one hash, as every refused sign-in does."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlencode

import httpx2 as httpx
import pytest
from sqlalchemy import func, select

from identity.admin import passwords
from identity.admin.errors import CurrentPasswordInvalid
from identity.app import create_app
from identity.db import Database
from identity.models import LocalPasswordTry
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
from tests.helpers.simulator_world import login_form
from tests.helpers.stack import Stack

BOB = f"bob@{CODE}"
FromAddress = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def local_accounts(db: Database) -> Database:
    """acme with bob and off (disabled) holding OWNER_PASSWORD, and nopass without one."""
    await add_tenant(db)
    await add_people(db, Person("bob"), Person("nopass"), Person("off", enabled=False))
    await give_password(db, "bob")
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
    for path in ("/login", "/login/change"):
        fields = {**await form(stranger), "account": BOB, "password": "x", "current": "x"}
        refused = await stranger.post(
            path, data={**fields, "new": "N3w-pass!", "again": "N3w-pass!"}
        )
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
    bob = from_address()
    for typo in ("Owner-Pass-2042", "owner-pass-2024"):
        assert (await sign_in(bob, typo)).status_code == 401
    assert (await sign_in(bob, OWNER_PASSWORD)).status_code == 303
    for new, again in (("weak", "weak"), ("Own-Choice-7", "Own-Choice-8"), ("Own-Choice-7",) * 2):
        fields = {**await form(bob), "account": BOB, "current": OWNER_PASSWORD}
        changed = await bob.post("/login/change", data={**fields, "new": new, "again": again})
    assert changed.status_code == 303, changed.text
    assert (await sign_in(bob, "Own-Choice-7")).status_code == 303


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


# --- one refusal for every failed change --------------------------------------------------------


async def test_every_refused_change_says_the_same_and_verifies_one_hash(
    from_address: FromAddress, verifications: list[str]
) -> None:
    browser = from_address()

    async def refused_change(account: str, current: str = OWNER_PASSWORD) -> str:
        verifications.clear()
        fields = {**await form(browser), "account": account, "current": current}
        answer = await browser.post(
            "/login/change", data={**fields, "new": "Own-Choice-7", "again": "Own-Choice-7"}
        )
        assert answer.status_code == 400, (account, answer.text)
        assert len(verifications) == 1, account
        return error_code(answer)

    seen = {
        await refused_change("bob@no-such-enterprise"),
        await refused_change(f"nobody@{CODE}"),
        await refused_change(f"nopass@{CODE}"),
        await refused_change(f"off@{CODE}"),
        await refused_change(BOB, "Wrong-Pass-1"),
        await refused_change("bob"),
    }
    assert len(seen) == 1 and CurrentPasswordInvalid.en in seen.pop()
