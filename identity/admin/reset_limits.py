"""The password-reset limits (design: "at most one per 3 minutes, 15 per hour, 60 per day,
counted per target member and per acting admin, exact under concurrency across processes").

The counts are the tenant's `password_resets` rows themselves, from the moment each code was
sent (`created_at`), confirmed or not; a reset whose code could not be sent does not count.
Exactness: a request first takes the lock rows (`reset_limits`) of both its keys, created when
missing, FOR UPDATE and in sorted order (two requests sharing keys cannot deadlock), then
counts, then writes its own row, all in one transaction; the next request for either key waits
for that commit and counts it. On SQLite a writing transaction (BEGIN IMMEDIATE) already
excludes every other writer, and the lock rows change nothing.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db import insert_for
from identity.models import PasswordReset, ResetLimit

RULES = ((timedelta(minutes=3), 1), (timedelta(hours=1), 15), (timedelta(days=1), 60))
"""(window, most resets within it)."""
LONGEST = max(window for window, _ in RULES)
MOST = max(limit for _, limit in RULES)
FAILED = "failed"
"""The status of a reset whose code was never sent (identity.admin.resets)."""

Key = tuple[str, str]  # ("target" | "admin", user name)


def keys(admin_user_name: str, target_user_name: str) -> list[Key]:
    return sorted({("admin", admin_user_name), ("target", target_user_name)})


async def hold(session: AsyncSession, tenant_id: str, held: list[Key]) -> None:
    """Create the keys' lock rows if missing and lock them until commit, in sorted order."""
    rows = [{"tenant_id": tenant_id, "kind": kind, "user_name": name} for kind, name in held]
    await session.execute(insert_for(session)(ResetLimit).values(rows).on_conflict_do_nothing())
    for kind, name in held:  # one at a time: the order of the locks is the order of the keys
        await session.execute(
            select(ResetLimit.kind)
            .where(
                ResetLimit.tenant_id == tenant_id,
                ResetLimit.kind == kind,
                ResetLimit.user_name == name,
            )
            .with_for_update()
        )


async def _counted(
    session: AsyncSession, tenant_id: str, key: Key, now: datetime
) -> list[datetime]:
    """When the key's counted resets of the longest window went out, newest first."""
    kind, name = key
    column = PasswordReset.admin_user_name if kind == "admin" else PasswordReset.target_user_name
    rows = await session.scalars(
        select(PasswordReset.created_at)
        .where(
            PasswordReset.tenant_id == tenant_id,
            column == name,
            PasswordReset.created_at > now - LONGEST,
            PasswordReset.status != FAILED,
        )
        .order_by(PasswordReset.created_at.desc())
        .limit(MOST)
    )
    return list(rows)


def wait(sent: list[datetime], now: datetime) -> float:
    """Seconds until one more reset fits every rule, given when the counted ones went out
    (newest first): for each rule that is full, until its `limit`-th newest leaves the window
    (a reset sent at t counts while now < t + window)."""
    longest = 0.0
    for window, limit in RULES:
        recent = [t for t in sent if t > now - window]
        if len(recent) >= limit:
            longest = max(longest, (recent[limit - 1] + window - now).total_seconds())
    return longest


async def retry_after(session: AsyncSession, tenant_id: str, held: list[Key], now: datetime) -> int:
    """Whole seconds until a reset is allowed for every key (0: now). Exact only with the
    keys held (`hold`); without, an estimate for showing on a page."""
    waits = [wait(await _counted(session, tenant_id, key, now), now) for key in held]
    return math.ceil(max(waits, default=0.0))
