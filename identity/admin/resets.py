"""An admin resets a member's local password, step by step (contract §6, mirrored).

1. `request_reset`: within the limits (identity.admin.reset_limits), a 6-digit code, valid 5
   minutes, goes to the acting admin's own mobile (or e-mail when they have no mobile, or no SMS
   sender is configured). It is stored only as an HMAC under the master key.
2. `confirm_reset` with the code: single use, at most 5 wrong tries. A random initial password
   goes to the member's mobile (or e-mail); it is stored Argon2id-hashed with `must_change`, and
   all the member's sessions end (identity.access), in the same transaction. No function
   returns it, nor logs it.

Both call out (a message) between writes, and no transaction stays open across a send (on
SQLite it would hold the one write lock for the length of a network call). So each takes the
`Database` and owns three short transactions, the state of the reset row saying what was done:

- request: *reserve* (check rights and limits, write the row `sending`: it counts from now) →
  send the code → mark it `sent` (now confirmable). A send that fails marks it `failed`: it no
  longer counts and can never be confirmed. A crash between leaves it `sending`: counted, never
  confirmable (the admin starts another reset once the limits allow).
- confirm: *claim* (check the code; a wrong one is counted and committed; a right one makes the
  row `confirming` for `CLAIM`) → send the password → *apply* (store the hash, end the sessions,
  mark it `confirmed`). A send that fails puts the row back to `sent`, the code still valid (the
  admin may confirm again); a crash lets the claim run out, with the same effect. The member's
  password changes only in the apply transaction: a failure before it changes nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from identity.access import Reason, end_access
from identity.admin import passwords, reset_limits
from identity.admin.errors import (
    CodeInvalid,
    ContactMissing,
    MemberNotFound,
    NotAdmin,
    ResetBusy,
    ResetDead,
    ResetExpired,
    ResetNotFound,
    ResetUsed,
    TooManyResets,
)
from identity.crypto import Mac
from identity.db import Database
from identity.directory import eligibility
from identity.models import DELETED, Member, PasswordReset, Tenant
from identity.notify import Channel, Message, Notifier, NotifyUnavailable, mask

CODE_TTL = timedelta(minutes=5)
MAX_TRIES = 5
CLAIM = timedelta(minutes=2)
"""How long a confirmation may take to send the initial password (well beyond SMTP's timeout)."""
SENDING, SENT, FAILED, CONFIRMING, CONFIRMED, DEAD = (
    "sending",
    "sent",
    reset_limits.FAILED,
    "confirming",
    "confirmed",
    "dead",
)


def code_mac(master_key: str) -> Mac:
    """The key reset codes are stored under (a code has 10^6 values: only the key protects it)."""
    return Mac(master_key, "password-reset-code")


@dataclass(frozen=True)
class ResetRequested:
    reset_id: str
    code_sent_to: str
    """Masked: `+86138****0001`, `a***@acme.example.com`."""
    expires_at: datetime


@dataclass(frozen=True)
class _Contact:
    channel: Channel
    to: str


def _contact(notifier: Notifier, member: Member, whose: str) -> _Contact:
    """The member's mobile, else e-mail; a channel no sender serves is skipped."""
    options: list[_Contact] = []
    if member.mobile and member.mobile.strip():
        options.append(_Contact("sms", member.mobile.strip()))
    if member.email and member.email.strip():
        options.append(_Contact("email", member.email.strip()))
    if not options:
        raise ContactMissing(whose)
    for option in options:
        if notifier.can_send(option.channel):
            return option
    channels = " or ".join(option.channel for option in options)
    raise NotifyUnavailable(f"no sender is configured for {channels} ({whose})")


async def _member(session: AsyncSession, tenant_id: str, user_name: str) -> Member:
    member = await session.scalar(
        select(Member).where(
            Member.tenant_id == tenant_id, Member.user_name == user_name, Member.state != DELETED
        )
    )
    if member is None:
        raise MemberNotFound()
    return member


async def _account(session: AsyncSession, tenant_id: str, user_name: str) -> str:
    """`account@tenantCode`, as the member signs in."""
    code = await session.scalar(select(Tenant.tenant_code).where(Tenant.tenant_id == tenant_id))
    return f"{user_name}@{code or tenant_id}"


def _code_message(contact: _Contact, target: str, code: str) -> Message:
    text = (
        f"您正在重置成员 {target} 的密码，验证码：{code}，5 分钟内有效，请勿告诉他人。\n"
        f"You are resetting the password of member {target}. Code: {code}, valid for 5 minutes."
        " Do not share it."
    )
    return Message(contact.channel, contact.to, "reset_code", code, text)


def _password_message(contact: _Contact, account: str, password: str) -> Message:
    text = (
        f"企业管理员已重置您的账号 {account} 的密码。初始密码：{password}，登录后须立即修改。\n"
        f"Your enterprise administrator reset the password of your account {account}. "
        f"Initial password: {password}. You must change it when you sign in."
    )
    return Message(contact.channel, contact.to, "initial_password", password, text)


@dataclass(frozen=True)
class _Reserved:
    requested: ResetRequested
    message: Message


async def _reserve(
    session: AsyncSession,
    notifier: Notifier,
    mac: Mac,
    tenant_id: str,
    admin_user_name: str,
    target_user_name: str,
    now: datetime,
) -> _Reserved:
    if not await eligibility.is_admin(session, tenant_id, admin_user_name):
        raise NotAdmin()
    target = await _member(session, tenant_id, target_user_name)
    _contact(notifier, target, "member")  # the password must be deliverable before we start
    to_admin = _contact(notifier, await _member(session, tenant_id, admin_user_name), "admin")
    held = reset_limits.keys(admin_user_name, target_user_name)
    await reset_limits.hold(session, tenant_id, held)
    limited = await reset_limits.limited(session, tenant_id, held, now)
    if limited is not None:
        raise TooManyResets(limited)
    reset_id, code = secrets.token_urlsafe(16), f"{secrets.randbelow(10**6):06d}"
    sent_to = mask(to_admin.channel, to_admin.to)
    session.add(
        PasswordReset(
            reset_id=reset_id,
            tenant_id=tenant_id,
            target_user_name=target_user_name,
            admin_user_name=admin_user_name,
            code_hash=mac.sign(f"{reset_id}:{code}"),
            status=SENDING,
            tries=0,
            created_at=now,
            expires_at=now + CODE_TTL,
            code_sent_to=sent_to,
        )
    )
    requested = ResetRequested(reset_id, sent_to, now + CODE_TTL)
    return _Reserved(requested, _code_message(to_admin, target_user_name, code))


async def _mark(db: Database, reset_id: str, was: str, status: str) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(PasswordReset)
            .where(PasswordReset.reset_id == reset_id, PasswordReset.status == was)
            .values(status=status)
        )


async def request_reset(
    db: Database,
    notifier: Notifier,
    mac: Mac,
    *,
    tenant_id: str,
    admin_user_name: str,
    target_user_name: str,
    now: datetime,
) -> ResetRequested:
    """Step 1: send a code to the acting admin for resetting `target_user_name`'s password.

    Raises `NotAdmin` (the actor is not, or no longer, an admin of the tenant), `MemberNotFound`
    (no such member in this tenant, deleted included), `ContactMissing` (the admin or the member
    has neither mobile nor e-mail), `NotifyUnavailable` (no sender serves their channels),
    `TooManyResets` (with `retry_after` and the limit), `NotifyFailed` (the code could not be
    sent: the reset does not count). Owns its transactions (see the module's docstring)."""
    async with db.transaction() as session:
        reserved = await _reserve(
            session, notifier, mac, tenant_id, admin_user_name, target_user_name, now
        )
    reset_id = reserved.requested.reset_id
    try:
        await notifier.send(reserved.message)
    except Exception:
        await _mark(db, reset_id, SENDING, FAILED)
        raise
    await _mark(db, reset_id, SENDING, SENT)
    return reserved.requested


async def next_reset(
    session: AsyncSession,
    *,
    tenant_id: str,
    admin_user_name: str,
    target_user_name: str,
    now: datetime,
) -> reset_limits.Limited | None:
    """For a page: the limit that keeps this admin from resetting this member now, and for
    how long (None: a reset is allowed). An estimate (the keys are not held);
    `request_reset` decides."""
    held = reset_limits.keys(admin_user_name, target_user_name)
    return await reset_limits.limited(session, tenant_id, held, now)


@dataclass(frozen=True)
class _Claim:
    tenant_id: str
    reset_id: str
    target: str
    contact: _Contact
    account: str
    claimed_until: datetime


async def _claim(
    session: AsyncSession,
    notifier: Notifier,
    mac: Mac,
    tenant_id: str,
    admin_user_name: str,
    reset_id: str,
    code: str,
    now: datetime,
) -> _Claim | CodeInvalid:
    """Check the reset and its code under the row's lock. A wrong code is returned, not
    raised, so that its try is committed."""
    reset = await session.scalar(
        select(PasswordReset)
        .where(
            PasswordReset.reset_id == reset_id,
            PasswordReset.tenant_id == tenant_id,
            PasswordReset.admin_user_name == admin_user_name,
        )
        .with_for_update()
    )
    if reset is None or reset.status in (SENDING, FAILED):
        raise ResetNotFound()
    if reset.status == CONFIRMED:
        raise ResetUsed()
    if reset.status == DEAD:
        raise ResetDead()
    if now >= reset.expires_at:
        raise ResetExpired()
    if reset.status == CONFIRMING and reset.claimed_until and reset.claimed_until > now:
        raise ResetBusy()
    if not await eligibility.is_admin(session, tenant_id, admin_user_name):
        raise NotAdmin()
    if not mac.verify(f"{reset_id}:{code.strip()}", reset.code_hash):
        reset.tries += 1
        if reset.tries >= MAX_TRIES:
            reset.status = DEAD
        return CodeInvalid(MAX_TRIES - reset.tries)
    target = await _member(session, tenant_id, reset.target_user_name)
    contact = _contact(notifier, target, "member")
    reset.status, reset.claimed_until = CONFIRMING, now + CLAIM
    account = await _account(session, tenant_id, target.user_name)
    return _Claim(tenant_id, reset_id, target.user_name, contact, account, now + CLAIM)


async def _release(db: Database, claim: _Claim) -> None:
    """The password did not go out: the reset is confirmable again, with the same code."""
    async with db.transaction() as session:
        await session.execute(
            update(PasswordReset)
            .where(
                PasswordReset.reset_id == claim.reset_id,
                PasswordReset.status == CONFIRMING,
                PasswordReset.claimed_until == claim.claimed_until,
            )
            .values(status=SENT, claimed_until=None)
        )


async def _apply(db: Database, claim: _Claim, password_hash: str, now: datetime) -> None:
    async with db.transaction() as session:
        reset = await session.scalar(
            select(PasswordReset).where(PasswordReset.reset_id == claim.reset_id).with_for_update()
        )
        if reset is None or (reset.status, reset.claimed_until) != (
            CONFIRMING,
            claim.claimed_until,
        ):
            raise ResetBusy()  # our claim ran out and another confirmation took it over
        await passwords.store_initial(session, claim.tenant_id, claim.target, password_hash, now)
        await end_access(
            session,
            tenant_id=claim.tenant_id,
            reason=Reason.PASSWORD_RESET,
            user_names=[claim.target],
        )
        reset.status, reset.claimed_until, reset.confirmed_at = CONFIRMED, None, now


async def confirm_reset(
    db: Database,
    notifier: Notifier,
    mac: Mac,
    *,
    tenant_id: str,
    admin_user_name: str,
    reset_id: str,
    code: str,
    now: datetime,
) -> str:
    """Step 2: with the right code, the member gets a new initial password (sent to them,
    never returned) and loses every session. Returns where it went, masked.

    Raises `ResetNotFound` (unknown, another tenant's or another admin's reset, or one whose
    code never went out), `ResetUsed`, `ResetDead` (5 wrong codes), `ResetExpired`,
    `ResetBusy` (another confirmation is sending), `NotAdmin`, `CodeInvalid` (with
    `tries_left`; the 5th kills the reset), `MemberNotFound` (deleted meanwhile),
    `ContactMissing`, `NotifyUnavailable` or `NotifyFailed` (nothing changed; the code stays
    valid). Owns its transactions (see the module's docstring)."""
    async with db.transaction() as session:
        claim = await _claim(
            session, notifier, mac, tenant_id, admin_user_name, reset_id, code, now
        )
    if isinstance(claim, CodeInvalid):
        raise claim
    try:
        password = passwords.initial_password(claim.target)
        password_hash = await passwords.hash_password(password)
        await notifier.send(_password_message(claim.contact, claim.account, password))
    except Exception:
        await _release(db, claim)
        raise
    await _apply(db, claim, password_hash, now)
    return mask(claim.contact.channel, claim.contact.to)
