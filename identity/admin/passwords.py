"""Local passwords (contract §6, mirrored): the policy, Argon2id hashing, sign-in with a
lockout (identity.admin.lockout), and the member's own change.

A member has no local password until an admin's reset confirms one (identity.admin.resets).
Sign-in is `account@tenantCode` and the password; every refusal is the one `SignInFailed`
(unknown enterprise or member, no password, wrong password, disabled, cancelled, deleted, tenant
not held, locked out), and each verifies exactly one Argon2id hash (a dummy one when there is no
account to check), so neither the message nor the time tells whether an account exists.

The change of an initial password follows a sign-in with it: the caller proves that sign-in
(identity.admin.local_login carries it, signed and short-lived, in the change form), so the
password is not asked again; the change applies only while the password signed in with is
still the member's and still to be changed.

Hashing takes about 0.1 s of CPU, so it runs in a worker thread, outside any transaction and
inside one of the process's few hashing slots (identity.admin.throttle): `authenticate` and
`change_password` take the `Database` and own their short transactions (`authenticate`: one
that counts the try before the hash is verified and one that records a success after).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from identity import access
from identity.admin import lockout
from identity.admin.errors import AdminError, SignInExpired, SignInFailed
from identity.admin.throttle import Throttle
from identity.db import Database, insert_for
from identity.directory import eligibility
from identity.models import LocalPassword
from identity.sso import admission
from identity.sso.refusals import Refusal

MIN_LENGTH, MAX_LENGTH, MIN_CLASSES = 8, 128, 3
MIN_NAME_IN_PASSWORD = 3
"""Account names this long or longer may not appear inside a password (shorter ones, "li",
would forbid too much); a password may never equal the account name, whatever its length."""
INITIAL_LENGTH = 16
_INITIAL_CLASSES = ("abcdefghijkmnpqrstuvwxyz", "ABCDEFGHJKLMNPQRSTUVWXYZ", "23456789")
"""Letters and digits without the look-alikes (0/O, 1/l/I): the member types it from a phone."""

HASHER = PasswordHash((Argon2Hasher(),))
"""Argon2id with argon2-cffi's defaults (RFC 9106's second recommendation, m=64 MiB, t=3)."""


@dataclass(frozen=True)
class Problem:
    code: str
    zh: str
    en: str


PROBLEMS = {
    "too_short": Problem("too_short", "密码至少需要 8 个字符。", "At least 8 characters."),
    "too_long": Problem("too_long", "密码最多 128 个字符。", "At most 128 characters."),
    "too_few_classes": Problem(
        "too_few_classes",
        "密码须包含小写字母、大写字母、数字、其他字符中的至少三类。",
        "At least 3 of: lower-case letters, upper-case letters, digits, other characters.",
    ),
    "contains_account": Problem(
        "contains_account", "密码不能包含账号名。", "The password must not contain the account."
    ),
    "same_as_current": Problem(
        "same_as_current", "新密码不能与当前密码相同。", "The new password must differ."
    ),
}


class PasswordPolicyError(AdminError):
    code = "password_policy"
    status = 422
    zh = "新密码不符合要求。"
    en = "The new password does not meet the rules."

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{self.en} ({', '.join(p.code for p in problems)})")
        self.problems = problems


def check_policy(password: str, user_name: str) -> list[Problem]:
    """What is wrong with `password` for the account `user_name`; empty when it may be used."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(PROBLEMS["too_short"])
    if len(password) > MAX_LENGTH:
        problems.append(PROBLEMS["too_long"])
    classes = (
        any(c.islower() for c in password),
        any(c.isupper() for c in password),
        any(c.isdigit() for c in password),
        any(not (c.islower() or c.isupper() or c.isdigit()) for c in password),
    )
    if sum(classes) < MIN_CLASSES:
        problems.append(PROBLEMS["too_few_classes"])
    name, folded = user_name.casefold(), password.casefold()
    if name and (folded == name or (len(name) >= MIN_NAME_IN_PASSWORD and name in folded)):
        problems.append(PROBLEMS["contains_account"])
    return problems


def initial_password(user_name: str = "") -> str:
    """A random password the policy accepts: 16 characters, each of the three classes at
    least once (about 93 bits)."""
    alphabet = "".join(_INITIAL_CLASSES)
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(INITIAL_LENGTH))
        every_class = all(any(c in cls for c in candidate) for cls in _INITIAL_CLASSES)
        if every_class and not check_policy(candidate, user_name):
            return candidate


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(HASHER.hash, password)


async def _verify(password: str, password_hash: str) -> tuple[bool, str | None]:
    """(matches, a new hash when the stored one used weaker parameters than today's)."""
    return await asyncio.to_thread(HASHER.verify_and_update, password, password_hash)


@cache
def _dummy_hash() -> str:
    return HASHER.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class SignIn:
    """Who signed in with a local password. `set_at` names the password that was checked:
    `still_current` refuses a session for it once a reset or change replaced it."""

    tenant_id: str
    user_name: str
    must_change: bool
    app_ids: tuple[str, ...]
    """The apps the member may use, sorted (never empty)."""
    set_at: datetime


@dataclass(frozen=True)
class Attempt:
    """One try with a password: the account as typed (`userName@tenantCode`, split), the
    password, the client's rate-limit key (identity.sso.limits.address_key) and the time."""

    tenant_code: str
    user_name: str
    password: str
    address: str
    now: datetime


@dataclass(frozen=True)
class _Try:
    sign_in: SignIn
    password_hash: str


async def _count_try(session: AsyncSession, attempt: Attempt) -> _Try | None:
    """Count a try before its hash is checked (identity.admin.lockout); None when this try
    must fail whatever the password: unknown enterprise or member, a member who may not sign
    in, no password, or this address locked out of the account."""
    if not attempt.tenant_code or not attempt.user_name:
        return None
    try:
        tenant_id = await admission.find_tenant(await session.connection(), attempt.tenant_code)
    except Refusal:
        return None
    apps = await eligibility.usable_apps(session, tenant_id, attempt.user_name)
    if not apps:
        return None
    row = await lockout.count_try(
        session, tenant_id, attempt.user_name, attempt.address, attempt.now
    )
    if row is None:
        return None
    sign_in = SignIn(tenant_id, attempt.user_name, row.must_change, tuple(apps), row.set_at)
    return _Try(sign_in, row.password_hash)


async def _store_stronger(session: AsyncSession, tried: _Try, new_hash: str | None) -> None:
    """Store a stronger hash, unless the password changed meanwhile."""
    if new_hash is None:
        return
    await session.execute(
        update(LocalPassword)
        .where(
            LocalPassword.tenant_id == tried.sign_in.tenant_id,
            LocalPassword.user_name == tried.sign_in.user_name,
            LocalPassword.set_at == tried.sign_in.set_at,
        )
        .values(password_hash=new_hash)
    )


async def _check(db: Database, throttle: Throttle, attempt: Attempt) -> _Try | None:
    """Count the try against its address (`TooManyTries`) and the lockout, and verify exactly
    one hash (a dummy one when there is no account to check) inside one of the process's
    hashing slots (`SignInBusy` when none frees up, before the lockout counts it); the try when
    the password is right, else None."""
    await throttle.take(attempt.address)
    async with throttle.hashing_slot():
        async with db.transaction() as session:
            tried = await _count_try(session, attempt)
        stored = tried.password_hash if tried else _dummy_hash()
        ok, new_hash = await _verify(attempt.password, stored)
    if tried is None or not ok:
        return None
    throttle.give_back(attempt.address)
    sign_in = tried.sign_in
    async with db.transaction() as session:
        await lockout.succeeded(
            session, sign_in.tenant_id, sign_in.user_name, attempt.address, attempt.now
        )
        await _store_stronger(session, tried, new_hash)
    return tried


async def authenticate(db: Database, throttle: Throttle, attempt: Attempt) -> SignIn:
    """Sign in `user_name@tenant_code` with a local password; `SignInFailed` for any refusal.

    The caller creates the session in a transaction of its own, in which it checks admission
    again (identity.sso.admission.admit) and `still_current`; with `must_change` it lets the
    member do nothing but `change_password` first."""
    tried = await _check(db, throttle, attempt)
    if tried is None:
        raise SignInFailed()
    return tried.sign_in


def _to_change(sign_in: SignIn) -> tuple[ColumnElement[bool], ...]:
    """The password `sign_in` was made with, while it is the member's and must be changed."""
    return (
        LocalPassword.tenant_id == sign_in.tenant_id,
        LocalPassword.user_name == sign_in.user_name,
        LocalPassword.set_at == sign_in.set_at,
        LocalPassword.must_change.is_(True),
    )


async def change_password(
    db: Database,
    throttle: Throttle,
    sign_in: SignIn,
    new: str,
    *,
    address: str,
    now: datetime,
    keep: str | None = None,
) -> SignIn:
    """The change of an initial password by the member who just signed in with it: `sign_in`
    is that sign-in as the caller proved it (who, and which password: `set_at`), so the
    password is not asked again. The new one is checked against the policy
    (`PasswordPolicyError`, before anything is counted) and must differ from the initial one
    (one hash verified, counted against the client's `address` like a try, in a hashing slot).
    `SignInExpired` once that password is no longer the member's or no longer to be changed
    (a reset or a change came first, or this change was made already), `SignInFailed` when
    the member may no longer use any app.

    Clears `must_change`, and in the same transaction ends every other session of the member
    with their tokens (ASVS 5.0 V7.4.3), all but the one whose id hash is `keep`: the browser
    making the change. Returns the sign-in with the new password, for the session."""
    problems = check_policy(new, sign_in.user_name)
    if problems:
        raise PasswordPolicyError(problems)
    await throttle.take(address)
    async with throttle.hashing_slot():
        async with db.read() as session:
            stored = await session.scalar(
                select(LocalPassword.password_hash).where(*_to_change(sign_in))
            )
        if stored is None:
            raise SignInExpired()
        same, _ = await _verify(new, stored)
    if same:
        raise PasswordPolicyError([PROBLEMS["same_as_current"]])
    throttle.give_back(address)
    new_hash = await hash_password(new)
    async with db.transaction() as session:
        apps = await eligibility.usable_apps(session, sign_in.tenant_id, sign_in.user_name)
        if not apps:
            raise SignInFailed()
        changed = await session.execute(
            update(LocalPassword)
            .where(*_to_change(sign_in))
            .values(password_hash=new_hash, must_change=False, set_at=now)
        )
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            raise SignInExpired()  # changed or reset meanwhile
        await access.end_access(
            session,
            tenant_id=sign_in.tenant_id,
            reason=access.Reason.PASSWORD_CHANGED,
            user_names=[sign_in.user_name],
            keep=keep,
        )
    return SignIn(sign_in.tenant_id, sign_in.user_name, False, tuple(apps), now)


async def still_current(db: AsyncSession | AsyncConnection, sign_in: SignIn) -> bool:
    """In the transaction that creates the session: is the password that was checked still
    the member's? Holds the row FOR SHARE until commit, so a reset either waits and then ends
    the new session, or commits first and the session is refused."""
    set_at = await db.scalar(
        select(LocalPassword.set_at)
        .where(
            LocalPassword.tenant_id == sign_in.tenant_id,
            LocalPassword.user_name == sign_in.user_name,
        )
        .with_for_update(read=True)
    )
    return set_at == sign_in.set_at


async def store_initial(
    session: AsyncSession, tenant_id: str, user_name: str, password_hash: str, now: datetime
) -> None:
    """A reset's initial password: replaces any other, must be changed, lifts a lockout."""
    values = {
        "password_hash": password_hash,
        "must_change": True,
        "set_at": now,
        "failed_tries": 0,
        "failures_since": None,
    }
    statement = insert_for(session)(LocalPassword).values(
        tenant_id=tenant_id, user_name=user_name, **values
    )
    await session.execute(
        statement.on_conflict_do_update(index_elements=["tenant_id", "user_name"], set_=values)
    )
    await lockout.lift(session, tenant_id, user_name)
