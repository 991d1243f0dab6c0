"""Departments: singleOrgSync and allOrgSync (contract §3.4, §3.5). Each says what it did
(`DepartmentSynced`, `DepartmentsReplaced`), for the call's audit row, and, when an app of the
tenant listens (`identity.events`), records a `directory.group.*` event for each department it
added, renamed or moved, or removed, in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypedDict

from sqlalchemy import Update, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db import lock, utcnow
from identity.directory.sync import count_among, rows_among, upsert_newer
from identity.events import outbox
from identity.events.outbox import Event, EventType
from identity.models import ACTIVE, DELETED, Department


class DepartmentRow(TypedDict):
    org_code: str
    name: str
    parent_code: str


class DepartmentChange(StrEnum):
    """What a singleOrgSync did to its department."""

    ADDED = "added"
    """New, or back after it was removed."""
    CHANGED = "changed"
    """Renamed or moved."""
    REMOVED = "removed"
    UNCHANGED = "unchanged"
    """Already so: the same name and parent, or removed before."""
    STALE = "stale"
    """Older than what is stored: nothing changed (contract §7)."""


@dataclass(frozen=True)
class DepartmentSynced:
    org_code: str
    change: DepartmentChange


@dataclass(frozen=True)
class DepartmentsReplaced:
    """What an allOrgSync did; each count at most the tenant's departments."""

    listed: int
    """Departments the call listed (each org code once)."""
    added: int
    """Listed ones that were not there (or were removed) and now are."""
    removed: int
    """Departments not listed, tombstoned by this call."""


async def sync_department(
    session: AsyncSession,
    *,
    tenant_id: str,
    department: DepartmentRow,
    deleted: bool,
    sync_time: str,
) -> DepartmentSynced:
    """Create, rename, move or delete one department; a repeated delete succeeds."""
    await lock(session, f"departments/{tenant_id}")
    listened = await outbox.listening(session, tenant_id)
    stored = (
        await session.execute(
            select(
                Department.name, Department.parent_code, Department.state, Department.last_sync_time
            ).where(
                Department.tenant_id == tenant_id, Department.org_code == department["org_code"]
            )
        )
    ).first()
    await upsert_newer(
        session,
        Department,
        ["tenant_id", "org_code"],
        [
            {
                "tenant_id": tenant_id,
                **department,
                "state": DELETED if deleted else ACTIVE,
                "last_sync_time": sync_time,
            }
        ],
        returning=False,
    )
    change = _change(stored, department, deleted, sync_time)
    if listened:
        name = stored[0] if stored is not None and deleted else department["name"]
        await outbox.record(session, tenant_id, _events({department["org_code"]: (change, name)}))
    return DepartmentSynced(department["org_code"], change)


_EVENT = {
    DepartmentChange.ADDED: EventType.GROUP_CREATED,
    DepartmentChange.CHANGED: EventType.GROUP_UPDATED,
    DepartmentChange.REMOVED: EventType.GROUP_DELETED,
}


def _events(changes: dict[str, tuple[DepartmentChange, str]]) -> list[Event]:
    """An event per department added, changed or removed (by org code); a removed one carries
    its name, which its resource no longer shows."""
    return [
        Event(
            _EVENT[change],
            org_code,
            None,
            {"displayName": name} if change is DepartmentChange.REMOVED else None,
        )
        for org_code, (change, name) in sorted(changes.items())
        if change in _EVENT
    ]


def _change(
    stored: Any, department: DepartmentRow, deleted: bool, sync_time: str
) -> DepartmentChange:
    """The change from the stored row (name, parent, state, sync time; None when absent)."""
    if stored is None:
        return DepartmentChange.UNCHANGED if deleted else DepartmentChange.ADDED
    name, parent_code, state, last_sync_time = stored
    if last_sync_time > sync_time:
        return DepartmentChange.STALE
    if state != ACTIVE:
        return DepartmentChange.UNCHANGED if deleted else DepartmentChange.ADDED
    if deleted:
        return DepartmentChange.REMOVED
    same = (name, parent_code) == (department["name"], department["parent_code"])
    return DepartmentChange.UNCHANGED if same else DepartmentChange.CHANGED


async def replace_departments(
    session: AsyncSession,
    *,
    tenant_id: str,
    departments: Sequence[DepartmentRow],
    sync_time: str,
) -> DepartmentsReplaced:
    """A full sync: upsert every listed department, tombstone the older ones not listed.

    Parents may come after children: no row references another, so order does not matter.
    A department changed by a newer singleOrgSync keeps that newer state. Two full syncs of
    one tenant take turns: each would otherwise lock its listed rows, then wait on the other's.
    What was added is one count before the upsert, of the listed departments it leaves as they
    were (active already, or newer than the call); what was removed is the tombstoning's row
    count.
    """
    await lock(session, f"departments/{tenant_id}")
    listed = sorted({d["org_code"] for d in departments})
    if await outbox.listening(session, tenant_id):
        return await _replace_listened(session, tenant_id, departments, listed, sync_time)
    staying = await count_among(
        session,
        Department,
        "org_code",
        listed,
        Department.tenant_id == tenant_id,
        or_(Department.state == ACTIVE, Department.last_sync_time > sync_time),
    )
    await _upsert_listed(session, tenant_id, departments, sync_time)
    removed = await session.execute(_removal(tenant_id, listed, sync_time))
    return DepartmentsReplaced(
        listed=len(listed),
        added=len(listed) - staying,
        removed=removed.rowcount,  # type: ignore[attr-defined]
    )


async def _replace_listened(
    session: AsyncSession,
    tenant_id: str,
    departments: Sequence[DepartmentRow],
    listed: list[str],
    sync_time: str,
) -> DepartmentsReplaced:
    """`replace_departments` when an app listens: the listed departments' rows are read before
    the upsert (one lookup each, as the count), so each change is known, and the removed ones
    are read back with their names."""
    stored = await rows_among(
        session,
        Department,
        "org_code",
        listed,
        ["name", "parent_code", "state", "last_sync_time"],
        Department.tenant_id == tenant_id,
    )
    incoming = {d["org_code"]: d for d in departments}  # the last of a repeated code wins
    changes = {
        code: (_change(stored.get(code), row, False, sync_time), row["name"])
        for code, row in incoming.items()
    }
    await _upsert_listed(session, tenant_id, departments, sync_time)
    removal = _removal(tenant_id, listed, sync_time)
    removed = (await session.execute(removal.returning(Department.org_code, Department.name))).all()
    changes |= {code: (DepartmentChange.REMOVED, name) for code, name in removed}
    await outbox.record(session, tenant_id, _events(changes))
    added = sum(1 for change, _ in changes.values() if change is DepartmentChange.ADDED)
    return DepartmentsReplaced(listed=len(listed), added=added, removed=len(removed))


async def _upsert_listed(
    session: AsyncSession, tenant_id: str, departments: Sequence[DepartmentRow], sync_time: str
) -> None:
    await upsert_newer(
        session,
        Department,
        ["tenant_id", "org_code"],
        [
            {"tenant_id": tenant_id, **d, "state": ACTIVE, "last_sync_time": sync_time}
            for d in departments
        ],
        returning=False,
    )


def _removal(tenant_id: str, listed: list[str], sync_time: str) -> Update:
    """Tombstone the tenant's active departments older than the call that it does not list."""
    return (
        update(Department)
        .where(
            Department.tenant_id == tenant_id,
            Department.state == ACTIVE,
            Department.last_sync_time < sync_time,
            Department.org_code.not_in(listed),
        )
        .values(state=DELETED, last_sync_time=sync_time, updated_at=utcnow())
    )
