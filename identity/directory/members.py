"""Members and their app authorisations: authSync (contract §3.3).

Flags: 1 add and 2 modify upsert (`enable` toggles); 0 the member was deleted (tombstone);
3 the authorisation was cancelled (the member stays, app access goes). Flags 0 and 3, and a
member arriving disabled, end that member's access in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import TypedDict

from sqlalchemy.ext.asyncio import AsyncSession

from identity.access import Reason, end_access
from identity.directory.sync import upsert_newer
from identity.models import ACTIVE, CANCELLED, DELETED, Authorisation, Member


class AuthFlag(IntEnum):
    DELETE = 0
    ADD = 1
    MODIFY = 2
    CANCEL = 3


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


async def sync_members(
    session: AsyncSession,
    *,
    tenant_id: str,
    app_id: str,
    instance_id: str,
    flag: AuthFlag,
    users: Sequence[MemberRow],
    sync_time: str,
) -> None:
    """Apply one authSync as one unit."""
    member_state = DELETED if flag is AuthFlag.DELETE else ACTIVE
    # Which authorisations were written only matters when access may end (see below).
    ends_access = flag in (AuthFlag.DELETE, AuthFlag.CANCEL) or not all(u["enabled"] for u in users)
    auth_state = {AuthFlag.DELETE: DELETED, AuthFlag.CANCEL: CANCELLED}.get(flag, ACTIVE)
    await upsert_newer(
        session,
        Member,
        ["tenant_id", "user_name"],
        [
            {
                "tenant_id": tenant_id,
                "user_name": u["user_name"],
                **{f: u[f] for f in _PROFILE},  # type: ignore[literal-required]
                "state": member_state,
                "last_sync_time": sync_time,
            }
            for u in users
        ],
        returning=False,
    )
    applied = await upsert_newer(
        session,
        Authorisation,
        ["tenant_id", "app_id", "user_name"],
        [
            {
                "tenant_id": tenant_id,
                "app_id": app_id,
                "user_name": u["user_name"],
                "instance_id": instance_id,
                "role": u["role"],
                "enabled": u["enabled"],
                "state": auth_state,
                "last_sync_time": sync_time,
            }
            for u in users
        ],
        returning=ends_access,
    )
    applied_names = {key[2] for key in applied}
    if flag in (AuthFlag.DELETE, AuthFlag.CANCEL):
        ended = sorted(applied_names)
        reason = (
            Reason.MEMBER_DELETED if flag is AuthFlag.DELETE else Reason.AUTHORISATION_CANCELLED
        )
    else:
        ended = sorted({u["user_name"] for u in users if not u["enabled"]} & applied_names)
        reason = Reason.MEMBER_DISABLED
    if ended:
        # A deleted member loses every app of the tenant; the other reasons concern this app.
        scope = None if flag is AuthFlag.DELETE else app_id
        await end_access(
            session, tenant_id=tenant_id, app_id=scope, user_names=ended, reason=reason
        )
