"""Members and their app authorisations: authSync (contract §3.3).

Flags: 1 add and 2 modify upsert (`enable` toggles); 0 the member was deleted (tombstone);
3 the authorisation was cancelled (the member stays, app access goes). Flags 0 and 3, and a
member arriving disabled, end that member's access in the same transaction. `sync_members` says
what it did (`MembersSynced`), for the call's audit row.

When a client of the app listens (`identity.events`), the sync also records one event per
member it wrote, in the same transaction: `created` for an authorisation that is new or active
again, `deactivated` for one now disabled or cancelled, `deleted` for a deleted member, else
`updated`; a row left alone because it is older than the stored one records nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TypedDict

from sqlalchemy import or_
from sqlalchemy.ext.asyncio import AsyncSession

from identity.access import Reason, end_access
from identity.directory.sync import count_among, rows_among, upsert_newer
from identity.events import outbox
from identity.events.outbox import Event, EventType
from identity.models import ACTIVE, CANCELLED, DELETED, Authorisation, Member


class AuthFlag(IntEnum):
    DELETE = 0
    ADD = 1
    MODIFY = 2
    CANCEL = 3


@dataclass(frozen=True)
class MembersSynced:
    """What one authSync did."""

    added: int
    """Members newly authorised for the app (flags 1 and 2): no authorisation before, or one
    cancelled or deleted that this call made active again."""
    ended: int
    """Members whose access this call ended: disabled (flags 1 and 2), de-authorised (3) or
    deleted (0)."""
    sessions_ended: int


class MemberRow(TypedDict):
    """One user of an authSync, already validated, in column names."""

    user_name: str
    name: str
    org_code: str
    role: str
    enabled: bool
    position: str | None
    employee_code: str | None
    employee_type: int | None
    mobile: str | None
    email: str | None
    work_place: str | None
    entry_date: str | None


_PROFILE = (
    "name",
    "org_code",
    "position",
    "employee_code",
    "employee_type",
    "mobile",
    "email",
    "work_place",
    "entry_date",
)


MEMBER_KEY = ["tenant_id", "user_name"]
AUTHORISATION_KEY = ["tenant_id", "app_id", "user_name"]
_AUTHORISING = (AuthFlag.ADD, AuthFlag.MODIFY)
_STATE = {AuthFlag.DELETE: DELETED, AuthFlag.CANCEL: CANCELLED}
_END_REASON = {
    AuthFlag.DELETE: Reason.MEMBER_DELETED,
    AuthFlag.CANCEL: Reason.AUTHORISATION_CANCELLED,
}


async def sync_members(
    session: AsyncSession,
    *,
    tenant_id: str,
    app_id: str,
    instance_id: str,
    flag: AuthFlag,
    users: Sequence[MemberRow],
    sync_time: str,
) -> MembersSynced:
    """Apply one authSync as one unit: members, their authorisations, and ended access."""
    member_state = DELETED if flag is AuthFlag.DELETE else ACTIVE
    members = [
        {
            "tenant_id": tenant_id,
            "user_name": u["user_name"],
            **{f: u[f] for f in _PROFILE},  # type: ignore[literal-required]
            "state": member_state,
            "last_sync_time": sync_time,
        }
        for u in users
    ]
    authorisations = [
        {
            "tenant_id": tenant_id,
            "app_id": app_id,
            "user_name": u["user_name"],
            "instance_id": instance_id,
            "role": u["role"],
            "enabled": u["enabled"],
            "state": _STATE.get(flag, ACTIVE),
            "last_sync_time": sync_time,
        }
        for u in users
    ]
    # First, and before any member row is locked (identity.events.outbox, lock order).
    listened = await outbox.listening(session, tenant_id, app_id)
    # Which rows were written (not stale) matters only when access may end: reading the keys
    # back costs a multi-row statement that psycopg cannot cache.
    may_end = flag in _END_REASON or not all(u["enabled"] for u in users)
    added, before = 0, None
    if flag in _AUTHORISING:
        names = sorted({u["user_name"] for u in users})
        if listened:
            before = await _authorised(session, tenant_id, app_id, names)
            added = sum(1 for name in names if _newly_active(before.get(name), sync_time))
        else:
            added = len(names) - await _staying(session, tenant_id, app_id, names, sync_time)
    await upsert_newer(session, Member, MEMBER_KEY, members, returning=False)
    written = await upsert_newer(
        session, Authorisation, AUTHORISATION_KEY, authorisations, returning=may_end
    )
    written_names = {key[2] for key in written}
    if listened:
        if before is not None and not may_end:
            written_names = _to_be_written(before, users, sync_time)
        events = _events(flag, app_id, users, written_names, before or {})
        await outbox.record(session, tenant_id, events)
    ended = _access_ends_for(flag, users, written_names)
    sessions_ended = 0
    if ended:
        # A deleted member loses every app of the tenant; the other reasons concern this app.
        sessions_ended = await end_access(
            session,
            tenant_id=tenant_id,
            app_id=None if flag is AuthFlag.DELETE else app_id,
            user_names=ended,
            reason=_END_REASON.get(flag, Reason.MEMBER_DISABLED),
        )
    return MembersSynced(added=added, ended=len(ended), sessions_ended=sessions_ended)


async def _staying(
    session: AsyncSession, tenant_id: str, app_id: str, names: Sequence[str], sync_time: str
) -> int:
    """How many of these members' authorisations for the app the upsert will not newly make
    active: already active, or newer than this call (left as they are). Read before the
    upsert, one lookup per member; two identical authSyncs at the same instant may both count
    the same members as added."""
    return await count_among(
        session,
        Authorisation,
        "user_name",
        names,
        Authorisation.tenant_id == tenant_id,
        Authorisation.app_id == app_id,
        or_(Authorisation.state == ACTIVE, Authorisation.last_sync_time > sync_time),
    )


def _access_ends_for(flag: AuthFlag, users: Sequence[MemberRow], written: set[str]) -> list[str]:
    """Flags 0 and 3 end access for every member they changed; 1 and 2 for those disabled."""
    if flag in _END_REASON:
        return sorted(written)
    return sorted({u["user_name"] for u in users if not u["enabled"]} & written)


Stored = tuple[str, bool, str]
"""An authorisation as it was before the sync: state, enabled, last sync time."""


async def _authorised(
    session: AsyncSession, tenant_id: str, app_id: str, names: Sequence[str]
) -> dict[str, Stored]:
    """These members' authorisations for the app as they are before the upsert, when an app
    listens: what `_staying` counts, read as rows (one lookup per member, as it does)."""
    found = await rows_among(
        session,
        Authorisation,
        "user_name",
        names,
        ["state", "enabled", "last_sync_time"],
        Authorisation.tenant_id == tenant_id,
        Authorisation.app_id == app_id,
    )
    return {name: (state, enabled, last) for name, (state, enabled, last) in found.items()}


def _to_be_written(
    before: dict[str, Stored], users: Sequence[MemberRow], sync_time: str
) -> set[str]:
    """The members whose authorisation the upsert writes, told from the rows read before it
    (none, or one no newer than the sync: the upsert's guard) rather than read back, which
    costs psycopg a multi-row statement. Exact while an app listens: every authSync of the
    tenant then holds its row lock from before that read until commit (`outbox.listening`),
    so none writes these rows in between."""
    return {
        u["user_name"]
        for u in users
        if (stored := before.get(u["user_name"])) is None or stored[2] <= sync_time
    }


def _newly_active(stored: Stored | None, sync_time: str) -> bool:
    """An authorising sync makes this authorisation newly active (`MembersSynced.added`): none
    before, or one neither active nor newer than the sync."""
    if stored is None:
        return True
    state, _, last_sync_time = stored
    return state != ACTIVE and last_sync_time <= sync_time


_ENDED_EVENT = {
    AuthFlag.DELETE: EventType.USER_DELETED,
    AuthFlag.CANCEL: EventType.USER_DEACTIVATED,
}


def _events(
    flag: AuthFlag,
    app_id: str,
    users: Sequence[MemberRow],
    written: set[str],
    before: dict[str, Stored],
) -> list[Event]:
    """One event per member the sync wrote, in user-name order (the order the rows were
    written)."""
    rows = {u["user_name"]: u for u in users}  # the last of a repeated name, as the upsert
    events = []
    for name in sorted(written):
        if flag in _ENDED_EVENT:
            kind = _ENDED_EVENT[flag]
        elif before.get(name) is None or before[name][0] != ACTIVE:
            kind = EventType.USER_CREATED
        elif not rows[name]["enabled"]:
            kind = EventType.USER_DEACTIVATED
        else:
            kind = EventType.USER_UPDATED
        events.append(Event(kind, name, app_id))
    return events
