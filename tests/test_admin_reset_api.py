"""Password resets over real HTTP (identity and the simulator as processes, messages through
the development sender `IDENTITY_NOTIFY_FILE`): the admin's code, the member's initial password
(never in a response nor a log), the member's sessions ended, the first local sign-in at
`/login` that must change the password, the limits, tenant isolation, and, on PostgreSQL with
identity in two processes, 50 simultaneous requests of which exactly one sends a code."""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import func, select

from identity.db import Database
from identity.models import LogoutDelivery, MemberSession, PasswordReset
from identity.sessions import hash_id
from identity.simulator import sender as events
from tests.helpers.admin_api import api, problem, signed_in
from tests.helpers.oidc_app import register, tokens_for
from tests.helpers.simulator_world import login_form, world
from tests.helpers.stack import Browser, Browsers, Stack, running_stack

ALICE_MOBILE, BOB_EMAIL = "+8613800000001", "bob@acme.example.com"
SESSION = "identity_session"
WINDOW = 180
"""At most one reset every 3 minutes, per member and per admin."""
NEW_PASSWORD = "Blue-Sky-2024"  # noqa: S105 - the password bob chooses in the test
CONCURRENT = 50
MANY_TRIES = {"IDENTITY_PASSWORD_TRIES_PER_MINUTE_PER_ADDRESS": "1000"}


class Outbox:
    """The development sender's file: one JSON line per message."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def clear(self) -> None:
        self.path.write_text("")

    def messages(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]


@pytest.fixture(scope="module")
def notify_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("notify") / "messages.jsonl"


@pytest.fixture(scope="module")
def stack_env(notify_file: Path) -> dict[str, str]:
    """This module's stack settings: messages go to `notify_file`, and its tests may sign in
    locally from one address more often than a person would."""
    return {"IDENTITY_NOTIFY_FILE": str(notify_file), **MANY_TRIES}


@pytest.fixture
def outbox(notify_file: Path) -> Outbox:
    box = Outbox(notify_file)
    box.clear()
    return box


async def start(admin: Browser, member: str = "bob") -> httpx.Response:
    return await api(admin, "POST", f"/members/{member}/password-resets")


async def confirm(admin: Browser, reset_id: str, code: str) -> httpx.Response:
    return await api(admin, "POST", f"/password-resets/{reset_id}/confirm", json={"code": code})


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


async def started_reset(admin: Browser, outbox: Outbox) -> tuple[str, str]:
    """Ask to reset bob: (resetId, the code sent to the admin)."""
    answer = await start(admin)
    assert answer.status_code == 202, answer.text
    codes = [m for m in outbox.messages() if m["kind"] == "reset_code"]
    return answer.json()["resetId"], codes[-1]["secret"]


async def reset_bob(admin: Browser, outbox: Outbox) -> str:
    """A whole reset of bob: his initial password, as his e-mail got it."""
    reset_id, code = await started_reset(admin, outbox)
    assert (await confirm(admin, reset_id, code)).status_code == 204
    return outbox.messages()[-1]["secret"]


def error_text(page: httpx.Response) -> str:
    found = re.search(r'id="error"[^>]*>(.*?)</p>', page.text, re.S)
    assert found, page.text
    return html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).strip()


async def local_sign_in(browser: Browser, account: str, password: str) -> httpx.Response:
    """`/login` as a browser: GET the form (it sets the CSRF cookie), post it; not followed."""
    page = await browser.get("/login")
    assert page.status_code == 200, page.text
    fields = {**login_form(page.text).inputs, "account": account, "password": password}
    assert fields["csrf"]
    return await browser.http.post(browser.stack.identity + "/login", data=fields)


async def change(browser: Browser, page: httpx.Response, new: str) -> httpx.Response:
    """The change form of `page` (which carries the sign-in), posted with `new` twice."""
    form = login_form(page.text)
    assert form.action == "/login/change"
    fields = {**form.inputs, "new": new, "again": new}
    return await browser.http.post(browser.stack.identity + form.action, data=fields)


async def test_a_reset_sends_a_code_to_the_admin_and_a_password_only_to_the_member(
    acme: Stack, alice: Browser, browsers: Browsers, outbox: Outbox
) -> None:
    bob = await signed_in(acme, browsers(acme), "bob@acme", "bob-pw")
    answers: list[httpx.Response] = []

    async def call(method: str, path: str, **kw: Any) -> httpx.Response:
        answers.append(await api(alice, method, path, **kw))
        return answers[-1]

    started = await call("POST", "/members/bob/password-resets")
    assert started.status_code == 202, started.text
    assert started.headers["cache-control"] == "no-store"
    assert set(started.json()) == {"resetId", "codeSentTo"}
    assert started.json()["codeSentTo"] == "+86138****0001"
    [sent] = outbox.messages()
    assert (sent["channel"], sent["to"], sent["kind"]) == ("sms", ALICE_MOBILE, "reset_code")
    code = sent["secret"]
    assert re.fullmatch(r"\d{6}", code) and code in sent["text"]
    assert code not in started.text

    confirm_path = f"/password-resets/{started.json()['resetId']}/confirm"
    problem(await call("POST", confirm_path, json={"code": wrong(code)}), 400, "code_invalid")
    assert (await bob.session()).status_code == 200  # nothing changed yet
    confirmed = await call("POST", confirm_path, json={"code": code})
    assert confirmed.status_code == 204 and confirmed.content == b"", confirmed.text

    code_message, password_message = outbox.messages()
    assert code_message == sent
    to_bob = (password_message["channel"], password_message["to"], password_message["kind"])
    assert to_bob == ("email", BOB_EMAIL, "initial_password")
    password = password_message["secret"]
    assert len(password) >= 8 and password in password_message["text"]

    await call("GET", "/members/bob")
    await call("GET", "/members")
    for answer in answers:
        assert password not in answer.text and password not in str(answer.headers)
    for output in (acme.identity_output(), acme.logs()):
        assert password not in output and code not in output

    ended = await bob.session()
    assert ended.status_code == 401 and ended.json()["reason"] == "password_reset", ended.text


async def test_the_member_signs_in_at_login_and_must_change_the_password_first(
    acme: Stack, alice: Browser, browsers: Browsers, outbox: Outbox
) -> None:
    initial = await reset_bob(alice, outbox)
    bob = browsers(acme)

    refused = await local_sign_in(bob, "bob@acme", initial + "x")
    assert refused.status_code == 401
    for unknown in ("nobody@acme", "bob@nowhere"):
        other = await local_sign_in(bob, unknown, initial)
        assert other.status_code == 401 and error_text(other) == error_text(refused)
    assert bob.cookie(SESSION) is None

    page = await local_sign_in(bob, "bob@acme", initial)
    assert page.status_code == 200 and 'id="change-password"' in page.text, page.text
    assert bob.cookie(SESSION) is None and (await bob.session()).status_code == 401

    weak = await change(bob, page, "weakpassword")
    assert weak.status_code == 400 and 'id="problems"' in weak.text, weak.text
    assert "At least 3 of: lower-case letters" in html.unescape(weak.text)
    assert bob.cookie(SESSION) is None

    done = await change(bob, weak, NEW_PASSWORD)
    assert done.status_code == 303 and done.headers["location"] == "/sso/me", done.text
    assert bob.cookie(SESSION)
    session = await bob.session()
    assert session.status_code == 200 and session.json()["userName"] == "bob", session.text
    assert session.json()["tenantCode"] == "acme"

    # The initial password is spent; the new one signs in straight away.
    again = browsers(acme)
    assert (await local_sign_in(again, "bob@acme", initial)).status_code == 401
    straight = await local_sign_in(again, "bob@acme", NEW_PASSWORD)
    assert straight.status_code == 303 and straight.headers["location"] == "/sso/me"


async def test_the_members_change_ends_their_other_sessions_and_tokens_but_not_this_browsers(
    acme: Stack, db: Database, alice: Browser, browsers: Browsers, outbox: Outbox
) -> None:
    """After a reset bob signs in through the marketplace in two browsers, and an app gets
    tokens in each; in one of them he then changes the initial password. The other session
    ends, with its tokens and a back-channel logout; this browser's session stays."""
    initial = await reset_bob(alice, outbox)
    async with httpx.AsyncClient(timeout=30) as http:
        app = await register(acme, db, http, backchannel_logout_uri="http://127.0.0.1:9/bc")
        here, elsewhere = browsers(acme), browsers(acme)
        kept = await tokens_for(app, here, account="bob@acme")
        ended = await tokens_for(app, elsewhere, account="bob@acme")
        async with db.read() as s:
            [elsewhere_sid] = await s.scalars(
                select(MemberSession.sid).where(
                    MemberSession.id_hash == hash_id(elsewhere.cookie(SESSION) or "")
                )
            )

        page = await local_sign_in(here, "bob@acme", initial)
        done = await change(here, page, NEW_PASSWORD)
        assert done.status_code == 303, done.text

        assert (await here.session()).json()["userName"] == "bob"
        refused = await elsewhere.session()
        assert refused.status_code == 401 and refused.json()["reason"] == "password_changed"
        for token in (ended["access_token"], ended["refresh_token"]):
            seen = await app.post("introspection_endpoint", token=token)
            assert seen.json() == {"active": False}
        seen = await app.post("introspection_endpoint", token=kept["access_token"])
        assert seen.json()["active"] is True
    async with db.read() as s:
        logouts = (await s.execute(select(LogoutDelivery.client_id, LogoutDelivery.sid))).all()
    assert [tuple(row) for row in logouts] == [(app.client_id, elsewhere_sid)]


async def test_a_second_reset_within_three_minutes_is_429_with_retry_after(
    alice: Browser, outbox: Outbox
) -> None:
    await started_reset(alice, outbox)
    again = await start(alice)
    problem(again, 429, "rate_limited")
    header, body = int(again.headers["retry-after"]), again.json()["retryAfter"]
    assert WINDOW - 10 < header <= WINDOW and WINDOW - 10 < body <= WINDOW, (header, body)
    assert len(outbox.messages()) == 1  # the refused one sent nothing


async def test_a_reset_confirms_once(alice: Browser, outbox: Outbox) -> None:
    reset_id, code = await started_reset(alice, outbox)
    assert (await confirm(alice, reset_id, code)).status_code == 204
    problem(await confirm(alice, reset_id, code), 409, "reset_used")
    problem(await confirm(alice, reset_id, wrong(code)), 409, "reset_used")
    assert [m["kind"] for m in outbox.messages()] == ["reset_code", "initial_password"]


async def test_five_wrong_codes_kill_the_reset(alice: Browser, outbox: Outbox) -> None:
    reset_id, code = await started_reset(alice, outbox)
    for left in (4, 3, 2, 1, 0):
        refused = await confirm(alice, reset_id, wrong(code))
        problem(refused, 400, "code_invalid")
        assert f"{left} tries left" in refused.json()["message"]
    problem(await confirm(alice, reset_id, code), 410, "reset_dead")
    assert [m["kind"] for m in outbox.messages()] == ["reset_code"]


async def test_another_tenants_admin_can_neither_reset_nor_confirm(
    acme: Stack, alice: Browser, browsers: Browsers, outbox: Outbox
) -> None:
    reset_id, code = await started_reset(alice, outbox)
    await acme.provision("beta")
    await events.set_role(acme.sender, acme.tenant("beta"), "alice", "admin")
    beta_admin = await signed_in(acme, browsers(acme), "alice@beta", "beta-pw")

    for other in ("bob@acme", "bob@ACME", "alice@acme"):
        problem(await start(beta_admin, other), 403, "forbidden")
    problem(await start(beta_admin, "bob"), 404, "member_not_found")
    for sent in (code, wrong(code)):
        problem(await confirm(beta_admin, reset_id, sent), 404, "reset_not_found")
    assert len(outbox.messages()) == 1

    # Untouched: acme's admin still confirms it, with the same code.
    assert (await confirm(alice, reset_id, code)).status_code == 204
    assert outbox.messages()[-1]["to"] == BOB_EMAIL


@pytest.fixture(scope="module")
async def two_processes(
    database_url: str, is_postgres: bool, private_key_file: Path, notify_file: Path
) -> AsyncIterator[Stack]:
    if not is_postgres:
        pytest.skip(
            "cross-process concurrency needs PostgreSQL: set IDENTITY_TEST_DATABASE_URL "
            "(SQLite serialises every writer with BEGIN IMMEDIATE)"
        )
    env = {"IDENTITY_NOTIFY_FILE": str(notify_file), **MANY_TRIES}
    async with running_stack(
        database_url, private_key_file, world(), identity_env=env, identity_processes=2
    ) as running:
        yield running


async def test_fifty_simultaneous_resets_across_two_processes_send_one_code(
    two_processes: Stack, db: Database, browsers: Browsers, outbox: Outbox
) -> None:
    stack = two_processes
    stack.reset()
    await stack.provision("acme")
    alice = await signed_in(stack, browsers(stack), "alice@acme", "alice-pw")
    raw_session = alice.cookie(SESSION)
    csrf = (await alice.session()).json()["csrfToken"]
    headers = {"Cookie": f"{SESSION}={raw_session}", "X-CSRF-Token": csrf}
    urls = stack.identity_urls
    assert len(urls) == 2
    clients = [httpx.AsyncClient(base_url=url, headers=headers, timeout=60) for url in urls]
    try:
        answers = await asyncio.gather(
            *(
                clients[i % len(clients)].post("/api/admin/members/bob/password-resets")
                for i in range(CONCURRENT)
            )
        )
    finally:
        for client in clients:
            await client.aclose()

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [202] + [429] * (CONCURRENT - 1), [a.text for a in answers]
    for answer in answers:
        if answer.status_code == 429:
            assert answer.json()["error"] == "rate_limited"
            retry_after = int(answer.headers["retry-after"])
            # Counted from each request's arrival, which may precede the winner's (it waited
            # for the lock): a second or so beyond the window then, never less than needed.
            assert retry_after == answer.json()["retryAfter"]
            assert WINDOW - 30 < retry_after <= WINDOW + 30, retry_after
    assert [m["kind"] for m in outbox.messages()] == ["reset_code"]
    async with db.read() as session:
        rows = await session.scalar(select(func.count()).select_from(PasswordReset))
    assert rows == 1
