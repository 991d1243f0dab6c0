"""Local passwords: the policy, Argon2id, sign-in as `account@tenantCode` with one generic
refusal and one hash verified whatever the cause, the lockout (5 failures from one address lock
that address out for 15 minutes; the account's ceiling; a clock the tests control), and the
change of an initial password right after signing in with it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from identity.admin import lockout, passwords
from identity.admin.errors import SignInExpired, SignInFailed
from identity.admin.passwords import (
    PasswordPolicyError,
    SignIn,
    change_password,
    check_policy,
    initial_password,
    still_current,
)
from identity.db import Database
from identity.models import CANCELLED, DELETED, Authorisation, LocalPassword, LocalPasswordTry
from tests.helpers.admin_rows import (
    APP,
    NOW,
    OWNER,
    PASSWORD,
    STRANGER,
    TENANT,
    THROTTLE,
    Person,
    add_people,
    add_tenant,
    freeze_instance,
    sign_in,
)

# --- the policy ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "user_name", "problems"),
    [
        ("Abcdef1", "bob", ["too_short"]),
        ("Abcdefg1", "bob", []),
        ("abcdefgh", "bob", ["too_few_classes"]),
        ("abcdefg1", "bob", ["too_few_classes"]),
        ("abcdef1!", "bob", []),
        ("ABCDEF1!", "bob", []),
        ("ABCDEFG!", "bob", ["too_few_classes"]),
        ("密码密码Ab1x", "bob", []),  # other characters are a class of their own
        ("x" * 120 + "Aa1!xxxxxxxxx", "bob", ["too_long"]),
        ("abc", "bob", ["too_short", "too_few_classes"]),
        ("My-BOB-pass1", "bob", ["contains_account"]),
        ("Alice.2024", "alice.2024", ["contains_account"]),  # equal, whatever the case
        ("Zhang-Li-1x", "li", []),  # a name this short may appear inside
        ("Li", "li", ["too_short", "too_few_classes", "contains_account"]),
    ],
)
def test_the_policy_names_each_problem(password: str, user_name: str, problems: list[str]) -> None:
    found = check_policy(password, user_name)
    assert [p.code for p in found] == problems
    assert all(p.zh and p.en for p in found)


def test_initial_passwords_are_random_and_pass_the_policy() -> None:
    made = {initial_password("bob") for _ in range(200)}
    assert len(made) == 200
    for password in made:
        assert len(password) == 16 and check_policy(password, "bob") == []
        assert not set(password) & set("0O1lI")


# --- sign-in -------------------------------------------------------------------------------------


async def change(
    db: Database, signed_in: SignIn, new: str, *, now: datetime = NOW, address: str = OWNER
) -> SignIn:
    """The change the member makes right after `signed_in` (the sign-in the form proves)."""
    return await change_password(db, THROTTLE, signed_in, new, address=address, now=now)


async def refused(db: Database, *args: Any, **kwargs: Any) -> None:
    with pytest.raises(SignInFailed):
        await sign_in(db, *args, **kwargs)


async def set_password(
    db: Database, user_name: str, password: str = PASSWORD, tenant_id: str = TENANT
) -> None:
    hashed = await passwords.hash_password(password)
    async with db.transaction() as s:
        await passwords.store_initial(s, tenant_id, user_name, hashed, NOW)


@pytest.fixture
async def accounts(db: Database) -> Database:
    """acme's members with a local password (bob, and off, gone and cancelled, who may not use
    it) and one without (nopass)."""
    await add_tenant(db)
    await add_people(
        db,
        Person("bob", mobile="+8613900000002"),
        Person("nopass"),
        Person("off", enabled=False),
        Person("gone", member_state=DELETED),
        Person("cancelled", auth_state=CANCELLED),
    )
    for user_name in ("bob", "off", "gone", "cancelled"):
        await set_password(db, user_name)
    return db


async def test_a_reset_password_is_stored_with_argon2id_and_signs_in(accounts: Database) -> None:
    async with accounts.read() as s:
        stored = await s.scalar(
            select(LocalPassword.password_hash).where(LocalPassword.user_name == "bob")
        )
    assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored
    signed_in = await sign_in(accounts)  # the code in any case
    assert (signed_in.tenant_id, signed_in.user_name) == (TENANT, "bob")
    assert signed_in.must_change and signed_in.app_ids == (APP,)
    assert (await sign_in(accounts, tenant=TENANT)).user_name == "bob"


async def test_every_refusal_is_the_same_and_verifies_one_hash(
    accounts: Database, verifications: list[str]
) -> None:
    real = await passwords.hash_password(PASSWORD)
    cost = real.rsplit("$", 2)[0]  # $argon2id$v=19$m=…,t=…,p=…: what the time depends on

    async def refusal(tenant: str, user_name: str, password: str = PASSWORD) -> str:
        verifications.clear()
        with pytest.raises(SignInFailed) as refused:
            await sign_in(accounts, user_name, password, tenant=tenant)
        assert len(verifications) == 1, (tenant, user_name)
        assert verifications[0].rsplit("$", 2)[0] == cost
        return f"{refused.value.code}|{refused.value}|{refused.value.status}"

    seen = {
        await refusal("no-such-enterprise", "bob"),
        await refusal("acme", "nobody"),
        await refusal("acme", "nopass"),
        await refusal("acme", "bob", "Wrong-Pass-1"),
        await refusal("acme", "off"),
        await refusal("acme", "gone"),
        await refusal("acme", "cancelled"),
        await refusal("", "bob"),
        await refusal("acme", ""),
    }
    await freeze_instance(accounts)
    seen.add(await refusal("acme", "bob"))
    assert seen == {"sign_in_failed|" + SignInFailed.en + "|401"}


# --- the lockout ---------------------------------------------------------------------------------


async def test_five_failures_lock_that_address_out_for_fifteen_minutes_not_the_owner(
    accounts: Database, verifications: list[str]
) -> None:
    for second in range(5):
        await refused(accounts, password="Wrong-Pass-1", now=NOW + timedelta(seconds=second))
    locked_at = NOW + timedelta(seconds=4)
    for later in (timedelta(seconds=1), timedelta(minutes=10), timedelta(minutes=15, seconds=-1)):
        verifications.clear()
        with pytest.raises(SignInFailed) as refused_:
            await sign_in(accounts, now=locked_at + later)
        assert str(refused_.value) == SignInFailed.en and len(verifications) == 1
    # Tries while locked neither count nor extend the lockout.
    signed_in = await sign_in(accounts, now=locked_at + timedelta(minutes=15))
    assert signed_in.user_name == "bob"


async def test_a_strangers_failures_do_not_lock_the_owner_out(accounts: Database) -> None:
    for n in range(12):
        await refused(accounts, password=f"Guess-{n}-x", address=STRANGER)
    assert (await sign_in(accounts, address=OWNER)).user_name == "bob"
    await refused(accounts, address=STRANGER)  # the stranger's address is the one locked out


async def test_a_success_starts_the_count_again(accounts: Database) -> None:
    for round_ in range(2):
        for n in range(4):
            await refused(accounts, password="Wrong-Pass-1", now=NOW + timedelta(minutes=n))
        signed_in = await sign_in(accounts, now=NOW + timedelta(minutes=5))
        assert signed_in.user_name == "bob", round_


async def test_after_a_lockout_runs_out_five_more_tries_are_allowed(accounts: Database) -> None:
    for _ in range(5):
        await refused(accounts, password="Wrong-Pass-1")
    later = NOW + timedelta(minutes=15)
    for _ in range(4):
        await refused(accounts, password="Wrong-Pass-1", now=later)
    assert (await sign_in(accounts, now=later)).user_name == "bob"


async def past_the_ceiling(db: Database, now: datetime = NOW) -> None:
    """bob's account as `CEILING` failures from other addresses within the hour leave it."""
    async with db.transaction() as s:
        await s.execute(
            update(LocalPassword)
            .where(LocalPassword.user_name == "bob")
            .values(failed_tries=lockout.CEILING, failures_since=now)
        )


async def test_past_the_ceiling_a_new_address_gets_one_try_and_the_members_own_five(
    accounts: Database,
) -> None:
    await sign_in(accounts, address=OWNER)  # an address bob has signed in from
    await past_the_ceiling(accounts)
    later = NOW + timedelta(minutes=1)
    await refused(accounts, password="Wrong-Pass-1", address=STRANGER, now=later)
    await refused(accounts, address=STRANGER, now=later)  # locked after one try
    for _ in range(4):
        await refused(accounts, password="Wrong-Pass-1", address=OWNER, now=later)
    assert (await sign_in(accounts, address=OWNER, now=later)).user_name == "bob"
    # Whoever knows the password gets in from a new address too (bob on another network).
    assert (await sign_in(accounts, address="192.0.2.9", now=later)).user_name == "bob"
    # An hour on, the ceiling starts again: five tries for a new address.
    hour = NOW + lockout.CEILING_WINDOW
    for _ in range(4):
        await refused(accounts, password="Wrong-Pass-1", address="192.0.2.10", now=hour)
    assert (await sign_in(accounts, address="192.0.2.10", now=hour)).user_name == "bob"


async def test_a_reset_lifts_every_lock(accounts: Database) -> None:
    for _ in range(5):
        await refused(accounts, password="Wrong-Pass-1", address=STRANGER)
    await set_password(accounts, "bob")
    assert (await sign_in(accounts, address=STRANGER)).user_name == "bob"


async def test_concurrent_tries_from_one_address_count_five_at_most(accounts: Database) -> None:
    """Counted before the hash under the account row's lock: 12 at once, five counted."""
    tries = [
        sign_in(accounts, password=f"Guess-{n}-x", address=STRANGER, now=NOW) for n in range(12)
    ]
    outcomes = await asyncio.gather(*tries, return_exceptions=True)
    assert all(isinstance(o, SignInFailed) for o in outcomes)
    async with accounts.read() as s:
        pair = (
            await s.execute(
                select(LocalPasswordTry.failed_tries, LocalPasswordTry.locked_until).where(
                    LocalPasswordTry.address == STRANGER
                )
            )
        ).one()
        account = await s.scalar(
            select(LocalPassword.failed_tries).where(LocalPassword.user_name == "bob")
        )
    assert pair.failed_tries == 5 and pair.locked_until is not None and account == 5
    await refused(accounts, address=STRANGER)


# --- changing it ---------------------------------------------------------------------------------


async def test_the_member_changes_the_initial_password(accounts: Database) -> None:
    before = await sign_in(accounts)
    later = NOW + timedelta(minutes=1)
    after = await change(accounts, before, "Own-Choice-7", now=later)
    assert not after.must_change and after.app_ids == (APP,)
    async with accounts.transaction() as s:
        assert not await still_current(s, before)
        assert await still_current(s, after)
    await refused(accounts, now=later)
    again = await sign_in(accounts, "bob", "Own-Choice-7", now=later)
    assert not again.must_change


async def test_a_change_needs_a_new_password_within_the_policy_and_not_the_initial_one(
    accounts: Database, verifications: list[str]
) -> None:
    signed_in = await sign_in(accounts)
    verifications.clear()
    with pytest.raises(PasswordPolicyError) as refused_:
        await change(accounts, signed_in, "bob-bob")
    assert [p.code for p in refused_.value.problems] == [
        "too_short",
        "too_few_classes",
        "contains_account",
    ]
    assert verifications == []  # refused before anything was counted
    with pytest.raises(PasswordPolicyError) as refused_:
        await change(accounts, signed_in, PASSWORD)
    assert [p.code for p in refused_.value.problems] == ["same_as_current"]
    assert len(verifications) == 1  # the initial password's hash, against the new one
    assert (await sign_in(accounts)).must_change


async def test_a_change_applies_only_to_the_password_signed_in_with_while_it_must_change(
    accounts: Database,
) -> None:
    """A sign-in's proof is worth one change of that password: not after the change, not
    after a reset replaced it, and not for a password that need not change."""
    signed_in = await sign_in(accounts)
    await change(accounts, signed_in, "Own-Choice-7", now=NOW + timedelta(minutes=1))
    with pytest.raises(SignInExpired):
        await change(accounts, signed_in, "Another-Choice-8", now=NOW + timedelta(minutes=2))
    own = await sign_in(accounts, "bob", "Own-Choice-7", now=NOW + timedelta(minutes=2))
    assert not own.must_change
    with pytest.raises(SignInExpired):  # claiming it must change, for the member's own one
        await change(accounts, replace(own, must_change=True), "Another-Choice-8")


async def test_a_reset_after_the_sign_in_voids_its_change(accounts: Database) -> None:
    signed_in = await sign_in(accounts)
    hashed = await passwords.hash_password(PASSWORD)
    async with accounts.transaction() as s:
        await passwords.store_initial(s, TENANT, "bob", hashed, NOW + timedelta(minutes=1))
    with pytest.raises(SignInExpired):
        await change(accounts, signed_in, "Own-Choice-7")


async def test_a_member_who_lost_access_meanwhile_cannot_change(accounts: Database) -> None:
    signed_in = await sign_in(accounts)
    async with accounts.transaction() as s:
        await s.execute(update(Authorisation).values(state=CANCELLED))
    with pytest.raises(SignInFailed):
        await change(accounts, signed_in, "Own-Choice-7")
    async with accounts.read() as s:
        still = await s.scalar(
            select(LocalPassword.must_change).where(LocalPassword.user_name == "bob")
        )
    assert still is True
