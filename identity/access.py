"""The one place that ends a member's or a tenant's right to use the app.

Every de-provisioning path calls `end_access`: authSync flag 0 and 3, `enable:"false"`, tenant
deleted, app credential deleted, instance frozen or released (and, with the later issues, admin
"end sessions" and password reset). Logout is not one of them: it ends its own session only
(`identity.sso.service.Sso.logout`). It deletes the affected sessions in the caller's
transaction, so the access ends when that transaction commits, and writes one outbox row per
member (or one for a whole tenant or app) for back-channel logout delivery.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from enum import StrEnum

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db import utcnow
from identity.models import AccessRevocation
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

    Returns how many sessions ended.
    """
    if user_names is not None and not user_names:
        return 0
    stmt = delete(MemberSession).where(MemberSession.tenant_id == tenant_id)
    if app_id is not None:
        stmt = stmt.where(MemberSession.app_id == app_id)
    if user_names is not None:
        stmt = stmt.where(MemberSession.user_name.in_(list(user_names)))
    ended = Counter((await session.scalars(stmt.returning(MemberSession.user_name))).all())
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
