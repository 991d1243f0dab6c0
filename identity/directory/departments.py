"""Departments: singleOrgSync and allOrgSync (contract §3.4, §3.5)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db import lock, utcnow
from identity.directory.sync import upsert_newer
from identity.models import ACTIVE, DELETED, Department


class DepartmentRow(TypedDict):
    org_code: str
    name: str
    parent_code: str


async def sync_department(
    session: AsyncSession,
    *,
    tenant_id: str,
    department: DepartmentRow,
    deleted: bool,
    sync_time: str,
) -> None:
    """Create, rename, move or delete one department; a repeated delete succeeds."""
    await lock(session, f"departments/{tenant_id}")
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
    )


async def replace_departments(
    session: AsyncSession,
    *,
    tenant_id: str,
    departments: Sequence[DepartmentRow],
    sync_time: str,
) -> None:
    """A full sync: upsert every listed department, tombstone the older ones not listed.

    Parents may come after children: no row references another, so order does not matter.
    A department changed by a newer singleOrgSync keeps that newer state. Two full syncs of
    one tenant take turns: each would otherwise lock its listed rows, then wait on the other's.
    """
    await lock(session, f"departments/{tenant_id}")
    await upsert_newer(
        session,
        Department,
        ["tenant_id", "org_code"],
        [
            {"tenant_id": tenant_id, **d, "state": ACTIVE, "last_sync_time": sync_time}
            for d in departments
        ],
    )
    listed = [d["org_code"] for d in departments]
    await session.execute(
        update(Department)
        .where(
            Department.tenant_id == tenant_id,
            Department.state == ACTIVE,
            Department.last_sync_time < sync_time,
            Department.org_code.not_in(listed),
        )
        .values(state=DELETED, last_sync_time=sync_time, updated_at=utcnow())
    )
