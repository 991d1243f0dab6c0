"""Password resets, step by step, with the development notifier's file: the code goes
to the admin's phone, the initial password to the member's and is never returned, the member's
sessions end; the code's rules (5 minutes, single use, 5 tries); what a failed send leaves; and
the limits, exactly, per member and per admin, with a clock the tests control (and under 50
concurrent requests on PostgreSQL)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Row, select

from identity.access import Reason
from identity.admin import resets
from identity.admin.errors import (
    CodeInvalid,
    ContactMissing,
    MemberNotFound,
    NotAdmin,
    RateLimited,
    ResetDead,
    ResetExpired,
    ResetNotFound,
    ResetUsed,
    TooManyResets,
)
from identity.admin.passwords import check_policy
from identity.admin.resets import ResetRequested, code_mac, confirm_reset, request_reset
from identity.db import Database
from identity.models import AccessRevocation, LocalPassword, PasswordReset
from identity.notify import FileSender, Message, Notifier, NotifyFailed, NotifyUnavailable
from tests.helpers.admin_rows import (
    NOW,
    OTHER_TENANT,
    TENANT,
    Person,
    add_people,
    add_session,
    add_tenant,
    file_notifier,
    outbox,
    sessions_of,
    sign_in,
)
from tests.helpers.marketplace_client import SECRET_KEY

MAC = code_mac(SECRET_KEY)
ADMINS = [f"admin{n}" for n in range(4)]
MEMBERS = [f"member{n}" for n in range(4)]


def mobile(n: int) -> str:
    return f"+86138{n:08d}"


@pytest.fixture
async def two_tenants(db: Database) -> Database:
    """acme's admins and members, with and without a phone or an email, and another tenant's."""
    await add_tenant(db)
    await add_tenant(db, OTHER_TENANT, "Other")
    await add_people(
        db,
        Person("alice", role="admin", mobile="+8613800000001", email="alice@acme.example.com"),
        Person("bob", mobile="+8613900000002", email="bob@acme.example.com"),
        Person("mail", role="admin", email="mail.admin@acme.example.com"),
        Person("plain", mobile="+8613700000003"),
        Person("mute"),
        *(Person(name, role="admin", mobile=mobile(n)) for n, name in enumerate(ADMINS)),
        *(Person(name, mobile=mobile(10 + n)) for n, name in enumerate(MEMBERS)),
        Person("olga", role="admin", mobile="+8613600000004", tenant_id=OTHER_TENANT),
        Person("oscar", mobile="+8613600000005", tenant_id=OTHER_TENANT),
    )
    return db


@pytest.fixture
def box(tmp_path: Path) -> Path:
    return tmp_path / "outbox.jsonl"


async def request(
    db: Database,
    notifier: Notifier,
    target: str = "bob",
    admin: str = "alice",
    now: datetime = NOW,
    tenant: str = TENANT,
) -> ResetRequested:
    return await request_reset(
        db,
        notifier,
        MAC,
        tenant_id=tenant,
        admin_user_name=admin,
        target_user_name=target,
        now=now,
    )


async def confirm(
    db: Database,
    notifier: Notifier,
    reset_id: str,
    code: str,
    now: datetime = NOW,
    admin: str = "alice",
    tenant: str = TENANT,
) -> str:
    return await confirm_reset(
        db,
        notifier,
        MAC,
        tenant_id=tenant,
        admin_user_name=admin,
        reset_id=reset_id,
        code=code,
        now=now,
    )


async def stored_resets(db: Database) -> list[Row[tuple[str, str, str]]]:
    """(reset_id, status, code_hash) of every reset, oldest first."""
    query = select(PasswordReset.reset_id, PasswordReset.status, PasswordReset.code_hash)
    async with db.read() as s:
        return list((await s.execute(query.order_by(PasswordReset.created_at))).all())


# --- the whole reset ------------------------------------------------------------------------------


async def test_the_code_goes_to_the_admin_and_the_password_to_the_member_and_sessions_end(
    two_tenants: Database, box: Path
) -> None:
    notifier = file_notifier(box)
    await add_session(two_tenants, TENANT, "bob", 1)
    await add_session(two_tenants, TENANT, "bob", 2)
    await add_session(two_tenants, TENANT, "alice", 1)
    requested = await request(two_tenants, notifier)
    assert requested.code_sent_to == "+86138****0001"
    assert requested.expires_at == NOW + timedelta(minutes=5)
    (code_line,) = outbox(box)
    code = code_line["secret"]
    assert code_line["channel"] == "sms" and code_line["to"] == "+8613800000001"
    assert code_line["kind"] == "reset_code" and len(code) == 6 and code.isdigit()
    assert (
        code in code_line["text"] and "验证码" in code_line["text"] and "Code" in code_line["text"]
    )
    (row,) = await stored_resets(two_tenants)
    assert code not in repr(dataclasses.astuple(requested)) and code not in row.code_hash
    assert await sessions_of(two_tenants, TENANT, "bob")  # nothing ends before the confirmation

    sent_to = await confirm(
        two_tenants, notifier, requested.reset_id, code, NOW + timedelta(minutes=1)
    )
    assert sent_to == "+86139****0002"
    password_line = outbox(box)[1]
    password = password_line["secret"]
    assert password_line["channel"] == "sms" and password_line["to"] == "+8613900000002"
    assert password_line["kind"] == "initial_password" and password in password_line["text"]
    assert "bob@Acme" in password_line["text"] and check_policy(password, "bob") == []
    assert password not in sent_to

    assert await sessions_of(two_tenants, TENANT, "bob") == []
    assert await sessions_of(two_tenants, TENANT, "alice") == ["sid-alice-1"]
    async with two_tenants.read() as s:
        reasons = await s.scalars(
            select(AccessRevocation.reason).where(AccessRevocation.user_name == "bob")
        )
        assert list(reasons) == [Reason.PASSWORD_RESET.value]
        stored = (
            await s.execute(
                select(LocalPassword.must_change, LocalPassword.password_hash).where(
                    LocalPassword.user_name == "bob"
                )
            )
        ).one()
    assert stored.must_change and password not in stored.password_hash
    signed_in = await sign_in(two_tenants, "bob", password, now=NOW + timedelta(minutes=2))
    assert signed_in.must_change


async def test_a_member_has_no_local_password_before_a_confirmed_reset(
    two_tenants: Database, box: Path
) -> None:
    await request(two_tenants, file_notifier(box))
    async with two_tenants.read() as s:
        assert await s.scalar(select(LocalPassword)) is None


async def test_e_mail_when_there_is_no_mobile_or_no_sms_sender(
    two_tenants: Database, box: Path
) -> None:
    both = file_notifier(box)
    requested = await request(two_tenants, both, target="bob", admin="mail")
    assert requested.code_sent_to == "m***@acme.example.com"
    assert outbox(box)[-1]["channel"] == "email"
    email_only = Notifier({"email": FileSender(box)})
    later = NOW + timedelta(minutes=3)
    requested = await request(two_tenants, email_only, target="bob", admin="alice", now=later)
    assert requested.code_sent_to == "a***@acme.example.com"
    code = outbox(box)[-1]["secret"]
    sent_to = await confirm(two_tenants, email_only, requested.reset_id, code, later)
    assert sent_to == "b***@acme.example.com"
    assert outbox(box)[-1]["to"] == "bob@acme.example.com"


async def test_what_cannot_be_delivered_is_refused_before_anything_counts(
    two_tenants: Database, box: Path
) -> None:
    with pytest.raises(ContactMissing) as missing:
        await request(two_tenants, file_notifier(box), target="mute")
    assert missing.value.whose == "member"
    with pytest.raises(NotifyUnavailable):  # plain has a mobile, nobody sends SMS
        await request(two_tenants, Notifier({"email": FileSender(box)}), target="plain")
    with pytest.raises(NotifyUnavailable):
        await request(two_tenants, Notifier({}))
    assert outbox(box) == [] and await stored_resets(two_tenants) == []
    assert (await request(two_tenants, file_notifier(box))).code_sent_to


async def test_only_an_admin_resets_and_only_members_of_their_own_tenant(
    two_tenants: Database, box: Path
) -> None:
    notifier = file_notifier(box)
    with pytest.raises(NotAdmin):
        await request(two_tenants, notifier, target="plain", admin="bob")
    with pytest.raises(NotAdmin):  # olga administers the other tenant
        await request(two_tenants, notifier, target="bob", admin="olga")
    for target in ("oscar", "nobody"):
        with pytest.raises(MemberNotFound):
            await request(two_tenants, notifier, target=target)
    with pytest.raises(MemberNotFound):
        await request(two_tenants, notifier, target="bob", admin="olga", tenant=OTHER_TENANT)
    assert outbox(box) == []


# --- the code's rules ----------------------------------------------------------------------------


async def test_wrong_codes_are_counted_and_the_fifth_kills_the_reset(
    two_tenants: Database, box: Path
) -> None:
    notifier = file_notifier(box)
    requested = await request(two_tenants, notifier)
    code = outbox(box)[0]["secret"]
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for left in (4, 3, 2, 1, 0):
        with pytest.raises(CodeInvalid) as refused:
            await confirm(two_tenants, notifier, requested.reset_id, wrong)
        assert refused.value.tries_left == left
    with pytest.raises(ResetDead):
        await confirm(two_tenants, notifier, requested.reset_id, code)
    assert len(outbox(box)) == 1


async def test_a_code_is_valid_five_minutes_and_once(two_tenants: Database, box: Path) -> None:
    notifier = file_notifier(box)
    late = await request(two_tenants, notifier)
    with pytest.raises(ResetExpired):
        await confirm(
            two_tenants, notifier, late.reset_id, outbox(box)[-1]["secret"], late.expires_at
        )
    later = NOW + timedelta(minutes=3)
    requested = await request(two_tenants, notifier, now=later)
    code = outbox(box)[-1]["secret"]
    just_in_time = requested.expires_at - timedelta(seconds=1)
    await confirm(two_tenants, notifier, requested.reset_id, code, just_in_time)
    with pytest.raises(ResetUsed):
        await confirm(two_tenants, notifier, requested.reset_id, code, just_in_time)


async def test_another_admin_or_tenant_cannot_confirm_it(two_tenants: Database, box: Path) -> None:
    notifier = file_notifier(box)
    requested = await request(two_tenants, notifier)
    code = outbox(box)[-1]["secret"]
    with pytest.raises(ResetNotFound):
        await confirm(two_tenants, notifier, requested.reset_id, code, admin="admin0")
    with pytest.raises(ResetNotFound):
        await confirm(
            two_tenants, notifier, requested.reset_id, code, admin="olga", tenant=OTHER_TENANT
        )
    with pytest.raises(ResetNotFound):
        await confirm(two_tenants, notifier, "no-such-reset", code)
    await confirm(two_tenants, notifier, requested.reset_id, code)


# --- failed sends --------------------------------------------------------------------------------


class Failing:
    async def send(self, message: Message) -> None:
        raise OSError("the gateway is down")


async def test_a_code_that_could_not_be_sent_neither_counts_nor_confirms(
    two_tenants: Database, box: Path
) -> None:
    broken = Notifier({"sms": Failing()})
    with pytest.raises(NotifyFailed):
        await request(two_tenants, broken)
    (failed,) = await stored_resets(two_tenants)
    assert failed.status == "failed"
    code = "000000"
    with pytest.raises(ResetNotFound):
        await confirm(two_tenants, file_notifier(box), failed.reset_id, code)
    assert (
        await request(two_tenants, file_notifier(box))
    ).code_sent_to  # not counted: allowed at once


async def test_a_password_that_could_not_be_sent_changes_nothing_and_the_code_stays_valid(
    two_tenants: Database, box: Path
) -> None:
    notifier = file_notifier(box)
    await add_session(two_tenants, TENANT, "bob", 1)
    requested = await request(two_tenants, notifier)
    code = outbox(box)[-1]["secret"]
    with pytest.raises(NotifyFailed):
        await confirm(two_tenants, Notifier({"sms": Failing()}), requested.reset_id, code)
    async with two_tenants.read() as s:
        assert await s.scalar(select(LocalPassword)) is None
    assert await sessions_of(two_tenants, TENANT, "bob") == ["sid-bob-1"]
    await confirm(two_tenants, notifier, requested.reset_id, code, NOW + timedelta(seconds=30))
    assert await sessions_of(two_tenants, TENANT, "bob") == []
    assert [line["kind"] for line in outbox(box)] == ["reset_code", "initial_password"]


# --- the limits, with a controlled clock ---------------------------------------------------------


async def refused_for(
    db: Database,
    notifier: Notifier,
    target: str,
    admin: str,
    at: datetime,
    limit: str | None = None,
) -> int:
    """Seconds until the reset is allowed; `limit`, when given, is the one it must name
    (`3min-member`: the rule, and whose count is full)."""
    with pytest.raises(TooManyResets) as refused:
        await request(db, notifier, target=target, admin=admin, now=at)
    assert refused.value.code == "rate_limited"
    assert refused.value.limited.seconds == refused.value.retry_after
    if limit is not None:
        assert refused.value.limited.name == limit
        assert refused.value.limited.en in refused.value.message
    return refused.value.retry_after


async def test_one_reset_per_three_minutes_per_member_and_per_admin(
    two_tenants: Database, box: Path
) -> None:
    notifier = file_notifier(box)
    await request(two_tenants, notifier, target="member0", admin="admin0")
    # The same member, another admin; the same admin, another member: both wait.
    at = NOW + timedelta(seconds=60)
    assert await refused_for(two_tenants, notifier, "member0", "admin1", at, "3min-member") == 120
    at = NOW + timedelta(seconds=179)
    assert await refused_for(two_tenants, notifier, "member1", "admin0", at, "3min-admin") == 1
    at = NOW + timedelta(seconds=179, milliseconds=500)
    assert await refused_for(two_tenants, notifier, "member1", "admin0", at) == 1  # rounded up
    await request(
        two_tenants, notifier, target="member1", admin="admin1"
    )  # neither key is used yet
    # Both keys held: the longer wait is the answer (admin1 reset member1 at NOW).
    at = NOW + timedelta(seconds=150)
    assert await refused_for(two_tenants, notifier, "member0", "admin1", at, "3min-both") == 30
    await request(
        two_tenants, notifier, target="member0", admin="admin1", now=NOW + timedelta(minutes=3)
    )
    assert len(outbox(box)) == 3


async def every_three_minutes(
    db: Database,
    notifier: Notifier,
    start: datetime,
    count: int,
    *,
    target: str | None = None,
    admin: str | None = None,
) -> datetime:
    """`count` resets 3 minutes apart from `start`, the other key rotating (so only the fixed
    key can reach a limit); returns when the last went out."""
    at = start
    for n in range(count):
        at = start + timedelta(minutes=3 * n)
        await request(
            db,
            notifier,
            target=target or MEMBERS[n % len(MEMBERS)],
            admin=admin or ADMINS[n % len(ADMINS)],
            now=at,
        )
    return at


@pytest.mark.parametrize("key", ["target", "admin"])
async def test_fifteen_resets_per_hour(two_tenants: Database, box: Path, key: str) -> None:
    notifier = file_notifier(box)
    fixed = {"target": "member0"} if key == "target" else {"admin": "admin0"}
    target, admin = fixed.get("target", "member1"), fixed.get("admin", "admin1")
    last = await every_three_minutes(two_tenants, notifier, NOW, 15, **fixed)
    assert last == NOW + timedelta(minutes=42)
    # The 16th fits the 3-minute rule at 45 min but not the hour: until the first leaves it.
    whose = "member" if key == "target" else "admin"
    at = NOW + timedelta(minutes=45)
    assert await refused_for(two_tenants, notifier, target, admin, at, f"hour-{whose}") == 900
    at = NOW + timedelta(minutes=59, seconds=59)
    assert await refused_for(two_tenants, notifier, target, admin, at) == 1
    await request(two_tenants, notifier, target=target, admin=admin, now=NOW + timedelta(hours=1))
    assert len(outbox(box)) == 16


@pytest.mark.parametrize("key", ["target", "admin"])
async def test_sixty_resets_per_day(two_tenants: Database, box: Path, key: str) -> None:
    notifier = file_notifier(box)
    fixed = {"target": "member0"} if key == "target" else {"admin": "admin0"}
    target, admin = fixed.get("target", "member1"), fixed.get("admin", "admin1")
    for hour in range(4):  # 15 an hour, 4 hours
        await every_three_minutes(two_tenants, notifier, NOW + timedelta(hours=hour), 15, **fixed)
    assert len(outbox(box)) == 60
    # At 4 h the hour holds 14 (3:03 … 3:42), but the day holds 60: until the first leaves it.
    at = NOW + timedelta(hours=4)
    whose = "member" if key == "target" else "admin"
    assert await refused_for(two_tenants, notifier, target, admin, at, f"day-{whose}") == 20 * 3600
    at = NOW + timedelta(days=1, seconds=-1)
    assert await refused_for(two_tenants, notifier, target, admin, at) == 1
    await request(two_tenants, notifier, target=target, admin=admin, now=NOW + timedelta(days=1))
    assert len(outbox(box)) == 61


async def test_a_confirmed_or_abandoned_reset_counts_the_same(
    two_tenants: Database, box: Path
) -> None:
    notifier = file_notifier(box)
    requested = await request(two_tenants, notifier)
    await confirm(two_tenants, notifier, requested.reset_id, outbox(box)[-1]["secret"])
    assert (
        await refused_for(two_tenants, notifier, "bob", "alice", NOW + timedelta(minutes=1)) == 120
    )
    async with two_tenants.read() as s:
        limited = await resets.next_reset(
            s, tenant_id=TENANT, admin_user_name="alice", target_user_name="bob", now=NOW
        )
    assert limited is not None and (limited.seconds, limited.name) == (180, "3min-both")


# --- concurrency ---------------------------------------------------------------------------------


async def test_fifty_concurrent_requests_send_one_code(
    two_tenants: Database, box: Path, database_url: str, is_postgres: bool
) -> None:
    """Five engines (pools of their own), ten requests each, all at once: the lock rows make
    the limits exact across connections, as across processes."""
    if not is_postgres:
        pytest.skip("concurrency across connections needs PostgreSQL (SQLite has one writer)")
    notifier = file_notifier(box)
    engines = [Database(database_url) for _ in range(5)]
    try:
        outcomes = await asyncio.gather(
            *(request(engines[n % 5], notifier) for n in range(50)), return_exceptions=True
        )
    finally:
        for engine in engines:
            await engine.dispose()
    sent = [o for o in outcomes if isinstance(o, ResetRequested)]
    limited = [o for o in outcomes if isinstance(o, RateLimited)]
    assert (len(sent), len(limited)) == (1, 49), [o for o in outcomes if isinstance(o, Exception)]
    assert {o.retry_after for o in limited} == {180}
    assert len(outbox(box)) == 1 and len(await stored_resets(two_tenants)) == 1
