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


MEMBER_KEY = ["tenant_id", "user_name"]
AUTHORISATION_KEY = ["tenant_id", "app_id", "user_name"]
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
) -> None:
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
    # Which rows were written (not stale) matters only when access may end: reading the keys
    # back costs a multi-row statement that psycopg cannot cache.
    may_end = flag in _END_REASON or not all(u["enabled"] for u in users)
    await upsert_newer(session, Member, MEMBER_KEY, members, returning=False)
    written = await upsert_newer(
        session, Authorisation, AUTHORISATION_KEY, authorisations, returning=may_end
    )
    ended = _access_ends_for(flag, users, {key[2] for key in written})
    if ended:
        # A deleted member loses every app of the tenant; the other reasons concern this app.
        await end_access(
            session,
            tenant_id=tenant_id,
            app_id=None if flag is AuthFlag.DELETE else app_id,
            user_names=ended,
            reason=_END_REASON.get(flag, Reason.MEMBER_DISABLED),
        )


def _access_ends_for(flag: AuthFlag, users: Sequence[MemberRow], written: set[str]) -> list[str]:
    """Flags 0 and 3 end access for every member they changed; 1 and 2 for those disabled."""
    if flag in _END_REASON:
        return sorted(written)
    return sorted({u["user_name"] for u in users if not u["enabled"]} & written)
