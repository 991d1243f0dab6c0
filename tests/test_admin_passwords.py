"""Local passwords (issue 10): the policy, Argon2id, sign-in as `account@tenantCode` with one
generic refusal and one hash verified whatever the cause, the lockout after 5 failures for 15
minutes (a clock the tests control), and the member's own change."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from identity.admin import passwords
from identity.admin.errors import CurrentPasswordInvalid, SignInFailed
from identity.admin.passwords import (
    PasswordPolicyError,
    authenticate,
    change_password,
    check_policy,
    initial_password,
    still_current,
)
from identity.db import Database
from identity.models import CANCELLED, DELETED, LocalPassword
from tests.admin_rows import APP, NOW, TENANT, Person, add_people, add_tenant, freeze_instance

PASSWORD = "Initial-Pass-1"  # noqa: S105 - the tests' password


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


async def set_password(
    db: Database, user_name: str, password: str = PASSWORD, tenant_id: str = TENANT
) -> None:
    hashed = await passwords.hash_password(password)
    async with db.transaction() as s:
        await passwords.store_initial(s, tenant_id, user_name, hashed, NOW)


@pytest.fixture
async def acme(db: Database) -> Database:
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


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hashes each attempt verified (every attempt must verify exactly one)."""
    seen: list[str] = []
    real: Callable[..., Any] = passwords.HASHER.verify_and_update

    def counting(password: str, password_hash: str) -> Any:
        seen.append(password_hash)
        return real(password, password_hash)

    monkeypatch.setattr(passwords.HASHER, "verify_and_update", counting)
    return seen


async def test_a_reset_password_is_stored_with_argon2id_and_signs_in(acme: Database) -> None:
    async with acme.read() as s:
        stored = await s.scalar(
            select(LocalPassword.password_hash).where(LocalPassword.user_name == "bob")
        )
    assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored
    signed_in = await authenticate(acme, "acme", "bob", PASSWORD, NOW)  # the code in any case
    assert (signed_in.tenant_id, signed_in.user_name) == (TENANT, "bob")
    assert signed_in.must_change and signed_in.app_ids == (APP,)
    assert (await authenticate(acme, TENANT, "bob", PASSWORD, NOW)).user_name == "bob"


async def test_every_refusal_is_the_same_and_verifies_one_hash(
    acme: Database, verifications: list[str]
) -> None:
    real = await passwords.hash_password(PASSWORD)
    cost = real.rsplit("$", 2)[0]  # $argon2id$v=19$m=…,t=…,p=…: what the time depends on

    async def refusal(tenant: str, user_name: str, password: str = PASSWORD) -> str:
        verifications.clear()
        with pytest.raises(SignInFailed) as refused:
            await authenticate(acme, tenant, user_name, password, NOW)
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
    }
    await freeze_instance(acme)
    seen.add(await refusal("acme", "bob"))
    assert seen == {"sign_in_failed|" + SignInFailed.en + "|401"}


async def test_five_failures_lock_the_account_for_fifteen_minutes(
    acme: Database, verifications: list[str]
) -> None:
    for second in range(5):
        with pytest.raises(SignInFailed):
            await authenticate(acme, "acme", "bob", "Wrong-Pass-1", NOW + timedelta(seconds=second))
    locked_at = NOW + timedelta(seconds=4)
    for later in (timedelta(seconds=1), timedelta(minutes=10), timedelta(minutes=15, seconds=-1)):
        verifications.clear()
        with pytest.raises(SignInFailed) as refused:
            await authenticate(acme, "acme", "bob", PASSWORD, locked_at + later)
        assert str(refused.value) == SignInFailed.en and len(verifications) == 1
    # Tries while locked neither count nor extend the lockout.
    signed_in = await authenticate(acme, "acme", "bob", PASSWORD, locked_at + timedelta(minutes=15))
    assert signed_in.user_name == "bob"


async def test_a_success_starts_the_count_again(acme: Database) -> None:
    for round_ in range(2):
        for n in range(4):
            with pytest.raises(SignInFailed):
                await authenticate(acme, "acme", "bob", "Wrong-Pass-1", NOW + timedelta(minutes=n))
        signed_in = await authenticate(acme, "acme", "bob", PASSWORD, NOW + timedelta(minutes=5))
        assert signed_in.user_name == "bob", round_


async def test_after_a_lockout_runs_out_five_more_tries_are_allowed(acme: Database) -> None:
    for _ in range(5):
        with pytest.raises(SignInFailed):
            await authenticate(acme, "acme", "bob", "Wrong-Pass-1", NOW)
    later = NOW + timedelta(minutes=15)
    for _ in range(4):
        with pytest.raises(SignInFailed):
            await authenticate(acme, "acme", "bob", "Wrong-Pass-1", later)
    assert (await authenticate(acme, "acme", "bob", PASSWORD, later)).user_name == "bob"


# --- changing it ---------------------------------------------------------------------------------


async def test_the_member_changes_the_initial_password(acme: Database) -> None:
    before = await authenticate(acme, "acme", "bob", PASSWORD, NOW)
    later = NOW + timedelta(minutes=1)
    after = await change_password(
        acme, tenant_id=TENANT, user_name="bob", current=PASSWORD, new="Own-Choice-7", now=later
    )
    assert not after.must_change and after.app_ids == (APP,)
    async with acme.transaction() as s:
        assert not await still_current(s, before)
        assert await still_current(s, after)
    with pytest.raises(SignInFailed):
        await authenticate(acme, "acme", "bob", PASSWORD, later)
    again = await authenticate(acme, "acme", "bob", "Own-Choice-7", later)
    assert not again.must_change


async def test_a_change_needs_the_current_password_and_a_new_one_within_the_policy(
    acme: Database, verifications: list[str]
) -> None:
    with pytest.raises(PasswordPolicyError) as refused:
        await change_password(
            acme, tenant_id=TENANT, user_name="bob", current=PASSWORD, new="bob-bob", now=NOW
        )
    assert [p.code for p in refused.value.problems] == [
        "too_short",
        "too_few_classes",
        "contains_account",
    ]
    assert verifications == []  # refused before anything was counted
    with pytest.raises(PasswordPolicyError) as refused:
        await change_password(
            acme, tenant_id=TENANT, user_name="bob", current=PASSWORD, new=PASSWORD, now=NOW
        )
    assert [p.code for p in refused.value.problems] == ["same_as_current"]
    with pytest.raises(CurrentPasswordInvalid):
        await change_password(
            acme,
            tenant_id=TENANT,
            user_name="bob",
            current="Wrong-Pass-1",
            new="Own-Choice-7",
            now=NOW,
        )
    with pytest.raises(CurrentPasswordInvalid):
        await change_password(
            acme,
            tenant_id=TENANT,
            user_name="nopass",
            current=PASSWORD,
            new="Own-Choice-7",
            now=NOW,
        )
    assert (await authenticate(acme, "acme", "bob", PASSWORD, NOW)).must_change


async def test_wrong_current_passwords_count_towards_the_lockout(acme: Database) -> None:
    for _ in range(5):
        with pytest.raises(CurrentPasswordInvalid):
            await change_password(
                acme,
                tenant_id=TENANT,
                user_name="bob",
                current="Wrong-1a",
                new="Own-Choice-7",
                now=NOW,
            )
    with pytest.raises(SignInFailed):
        await authenticate(acme, "acme", "bob", PASSWORD, NOW + timedelta(minutes=1))
