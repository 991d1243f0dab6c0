"""The local sign-in lockout: failures counted per account and client address, under a ceiling
per account that slows a distributed guesser without locking the owner out.

A lockout counted per account alone is a weapon: five wrong tries from anywhere lock the owner
out. So the failures that lock are counted per (account, address), the address being the
client's rate-limit key (identity.sso.limits.address_key: IPv4 as is, IPv6 by /64):
`MAX_FAILED_TRIES` in a row from one address lock *that address* out of the account for
`LOCKOUT`; the owner, elsewhere, signs in as before.

Counted that way alone, an attacker with many addresses would get five guesses per address. So
every failure also counts towards the account's ceiling (`CEILING` in `CEILING_WINDOW`, the
figure of ASVS 4.0 V2.2.1). Past it, an address from which the member has never signed in gets
one try per `LOCKOUT` instead of five, while addresses the member has signed in from keep five.
The ceiling never refuses a try outright, which would make it a weapon again: whoever knows the
password still gets in from any address, the owner included; only guessing slows, fivefold (NIST
SP 800-63B §5.2.2 names "accepting only from addresses the subscriber authenticated from before"
as a risk-based limit; this is a softer form of it). A reset lifts every lock of the member.
Tries are counted before their hash is checked, under the account row's lock, so concurrent
tries cannot exceed the limits; a success takes its own try back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db import insert_for
from identity.models import LocalPassword, LocalPasswordTry

MAX_FAILED_TRIES = 5
"""Failures in a row from one address that lock that address out of the account."""
LOCKOUT = timedelta(minutes=15)
CEILING = 100
"""Failures of one account, from any addresses, within `CEILING_WINDOW`, past which an
address the member never signed in from gets one try per `LOCKOUT`."""
CEILING_WINDOW = timedelta(hours=1)
UNKNOWN_KEPT = timedelta(days=1)
"""An address that never signed in is forgotten this long after its last try (the worker)."""


async def count_try(
    session: AsyncSession, tenant_id: str, user_name: str, address: str, now: datetime
) -> LocalPassword | None:
    """Count a try at the account from `address` before its hash is checked; the password row
    (locked until commit), or None when this try must fail whatever the password: the member
    has no password, or this address is locked out of the account."""
    row = await session.scalar(
        select(LocalPassword)
        .where(LocalPassword.tenant_id == tenant_id, LocalPassword.user_name == user_name)
        .with_for_update()
    )
    if row is None:
        return None
    pair = await _pair(session, tenant_id, user_name, address, now)
    if pair.locked_until is not None:
        if pair.locked_until > now:
            return None
        pair.failed_tries, pair.locked_until = 0, None
    if row.failures_since is None or now - row.failures_since >= CEILING_WINDOW:
        row.failed_tries, row.failures_since = 0, now
    known = pair.signed_in_at is not None
    allowed = MAX_FAILED_TRIES if known or row.failed_tries < CEILING else 1
    row.failed_tries += 1
    pair.failed_tries += 1
    pair.last_try_at = now
    if pair.failed_tries >= allowed:
        pair.locked_until = now + LOCKOUT
    return row


async def _pair(
    session: AsyncSession, tenant_id: str, user_name: str, address: str, now: datetime
) -> LocalPasswordTry:
    """The (account, address) row, made on its first try (an upsert, so two replicas racing to
    make it both get the one row)."""
    key = {"tenant_id": tenant_id, "user_name": user_name, "address": address}
    await session.execute(
        insert_for(session)(LocalPasswordTry)
        .values(**key, failed_tries=0, last_try_at=now)
        .on_conflict_do_nothing(index_elements=list(key))
    )
    pair = await session.scalar(
        select(LocalPasswordTry)
        .filter_by(**key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert pair is not None
    return pair


async def succeeded(
    session: AsyncSession, tenant_id: str, user_name: str, address: str, now: datetime
) -> None:
    """A right password from `address`: its count and lock go, it becomes an address the
    member signed in from, and the account's count takes this try back. The account row
    first, as `count_try` locks them, so the two cannot deadlock."""
    await session.execute(
        update(LocalPassword)
        .filter_by(tenant_id=tenant_id, user_name=user_name)
        .values(
            failed_tries=case(
                (LocalPassword.failed_tries > 0, LocalPassword.failed_tries - 1), else_=0
            )
        )
    )
    await session.execute(
        update(LocalPasswordTry)
        .filter_by(tenant_id=tenant_id, user_name=user_name, address=address)
        .values(failed_tries=0, locked_until=None, signed_in_at=now, last_try_at=now)
    )


async def lift(session: AsyncSession, tenant_id: str, user_name: str) -> None:
    """A reset: every lock and count of the member goes (the addresses they signed in from
    stay known)."""
    await session.execute(
        update(LocalPasswordTry)
        .filter_by(tenant_id=tenant_id, user_name=user_name)
        .values(failed_tries=0, locked_until=None)
    )
