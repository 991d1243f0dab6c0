"""The one place that ends a member's or a tenant's right to use the app.

Every de-provisioning path calls `end_access`: authSync flag 0 and 3, `enable:"false"`, tenant
deleted, app credential deleted, instance frozen or released (and, with the later issues, admin
"end sessions" and password reset). Logout is not one of them: it ends its own session only
(`identity.sso.service.Sso.logout`). It deletes the affected sessions, or for one app only that
app's part of them, in the caller's transaction, so the access ends when that transaction
commits, and writes one audit row per member (or one for a whole tenant or app).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from enum import StrEnum

from sqlalchemy import delete, exists, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db import utcnow
from identity.models import AccessRevocation, SessionApp
from identity.models import Session as MemberSession


class Reason(StrEnum):
    MEMBER_DELETED = "member_deleted"
    AUTHORISATION_CANCELLED = "authorisation_cancelled"
    MEMBER_DISABLED = "member_disabled"
    TENANT_DELETED = "tenant_deleted"
    APP_CREDENTIAL_DELETED = "app_credential_deleted"
    INSTANCE_FROZEN = "instance_frozen"
    INSTANCE_RELEASED = "instance_released"
    INSTANCE_UNBOUND = "instance_unbound"


async def end_access(
    session: AsyncSession,
    *,
    tenant_id: str,
    reason: Reason,
    app_id: str | None = None,
    user_names: Sequence[str] | None = None,
) -> int:
    """End access for `user_names` of the tenant (all members when None), in one app or all.

    For one app, that app's part of each session ends (and a session left with no app ends);
    otherwise the whole sessions end. Returns how many sessions lost access.
    """
    if user_names is not None and not user_names:
        return 0
    members = select(MemberSession.sid, MemberSession.user_name).where(
        MemberSession.tenant_id == tenant_id
    )
    if user_names is not None:
        members = members.where(MemberSession.user_name.in_(list(user_names)))
    if app_id is not None:
        members = members.join(SessionApp, SessionApp.sid == MemberSession.sid).where(
            SessionApp.app_id == app_id
        )
    affected = (await session.execute(members)).all()
    ended = Counter(user_name for _, user_name in affected)
    sids = [sid for sid, _ in affected]
    if sids and app_id is None:
        await session.execute(delete(MemberSession).where(MemberSession.sid.in_(sids)))
    elif sids:
        await session.execute(
            delete(SessionApp).where(SessionApp.sid.in_(sids), SessionApp.app_id == app_id)
        )
        await session.execute(
            delete(MemberSession).where(
                MemberSession.sid.in_(sids),
                ~exists().where(SessionApp.sid == MemberSession.sid),
            )
        )
    now = utcnow()
    targets: Sequence[str | None] = user_names if user_names is not None else [None]
    await session.execute(
        insert(AccessRevocation),
        [
            {
                "tenant_id": tenant_id,
                "app_id": app_id,
                "user_name": name,
                "reason": reason.value,
                "sessions_ended": ended.total() if name is None else ended[name],
                "created_at": now,
            }
            for name in targets
        ],
    )
    return ended.total()
