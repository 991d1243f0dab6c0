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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db import insert_for
from identity.models import PasswordReset, ResetLimit


@dataclass(frozen=True)
class Rule:
    """At most `most` resets within `window`; `name` in a link, `zh` and `en` on a page."""

    name: str
    window: timedelta
    most: int
    zh: str
    en: str


RULES = (
    Rule("3min", timedelta(minutes=3), 1, "每 3 分钟最多重置 1 次", "at most 1 reset in 3 minutes"),
    Rule("hour", timedelta(hours=1), 15, "每小时最多重置 15 次", "at most 15 resets an hour"),
    Rule("day", timedelta(days=1), 60, "每天最多重置 60 次", "at most 60 resets a day"),
)
LONGEST = max(rule.window for rule in RULES)
MOST = max(rule.most for rule in RULES)
Whose = Literal["member", "admin", "both"]
"""Whose count is full: the target member's, the acting admin's, or both."""
_WHOSE_ZH = {"member": "该成员的密码{}", "admin": "您{}", "both": "该成员的密码和您均为{}"}
_WHOSE_EN = {
    "member": "{} for this member",
    "admin": "{} by you",
    "both": "{} for this member and by you",
}


@dataclass(frozen=True)
class Limited:
    """Why a reset must wait: `seconds` until it is allowed, the rule that holds it longest
    and whose count that rule found full. Named in a link as `Limited.name` (`3min-member`)."""

    seconds: int
    rule: Rule
    whose: Whose

    @property
    def name(self) -> str:
        return f"{self.rule.name}-{self.whose}"

    @property
    def zh(self) -> str:
        return _WHOSE_ZH[self.whose].format(self.rule.zh)

    @property
    def en(self) -> str:
        return _WHOSE_EN[self.whose].format(self.rule.en)


def named(name: str, seconds: int = 0) -> Limited | None:
    """The `Limited` a link names (`Limited.name`), or None when it names none."""
    rule_name, _, whose = name.partition("-")
    rule = next((rule for rule in RULES if rule.name == rule_name), None)
    if rule is None or whose not in _WHOSE_ZH:
        return None
    return Limited(seconds, rule, whose)  # type: ignore[arg-type]  # checked just above


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


def wait(sent: list[datetime], now: datetime) -> tuple[float, Rule | None]:
    """Seconds until one more reset fits every rule, given when the counted ones went out
    (newest first), and the rule that holds it longest (None: none is full): for each rule
    that is full, until its `most`-th newest leaves the window (a reset sent at t counts while
    now < t + window)."""
    longest, holding = 0.0, None
    for rule in RULES:
        recent = [t for t in sent if t > now - rule.window]
        if len(recent) >= rule.most:
            seconds = (recent[rule.most - 1] + rule.window - now).total_seconds()
            if seconds > longest:
                longest, holding = seconds, rule
    return longest, holding


async def limited(
    session: AsyncSession, tenant_id: str, held: list[Key], now: datetime
) -> Limited | None:
    """What keeps a reset for every key waiting, or None when it is allowed now. Exact only
    with the keys held (`hold`); without, an estimate for showing on a page."""
    found: list[tuple[int, Rule, str]] = []
    for key in held:
        seconds, rule = wait(await _counted(session, tenant_id, key, now), now)
        if rule is not None:
            found.append((math.ceil(seconds), rule, key[0]))
    if not found:
        return None
    seconds, rule, _ = max(found, key=lambda item: item[0])
    kinds = {kind for waited, held_by, kind in found if (waited, held_by) == (seconds, rule)}
    whose: Whose = "both" if len(kinds) == 2 else "member" if "target" in kinds else "admin"
    return Limited(seconds, rule, whose)


async def retry_after(session: AsyncSession, tenant_id: str, held: list[Key], now: datetime) -> int:
    """Whole seconds until a reset is allowed for every key (0: now); see `limited`."""
    found = await limited(session, tenant_id, held, now)
    return found.seconds if found is not None else 0
