"""Who may use the app, and who may administer the tenant: the same conditions a marketplace
login passes (`identity.sessions.store.MAY_USE_APP`), as one statement, for local sign-in and
the admin wing.

A member may use an app while the tenant is active and held (a live instance, or the seller's
own test tenant), the app's credential is active with its instance live, and the member is
active with an active, enabled authorisation for the app whose instance is live. A member is
an admin of their tenant while one of those authorisations carries `role=admin`: losing the
role or the access ends the rights at once, since every check reads them afresh.
"""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from identity.models import AppCredential, Authorisation, Member, Tenant
from identity.sessions.store import MAY_USE_APP

Executor = AsyncSession | AsyncConnection
ADMIN_ROLE = "admin"


def _usable(tenant_id: str, user_name: str) -> Select[str]:
    return (
        select(Authorisation.app_id)
        .join(Tenant, Tenant.tenant_id == Authorisation.tenant_id)
        .join(
            Member,
            (Member.tenant_id == Authorisation.tenant_id)
            & (Member.user_name == Authorisation.user_name),
        )
        .join(
            AppCredential,
            (AppCredential.tenant_id == Authorisation.tenant_id)
            & (AppCredential.app_id == Authorisation.app_id),
        )
        .where(
            Authorisation.tenant_id == tenant_id,
            Authorisation.user_name == user_name,
            *MAY_USE_APP,
        )
    )


async def usable_apps(db: Executor, tenant_id: str, user_name: str) -> list[str]:
    """The apps the member may sign in to now, sorted; empty when none."""
    rows = await db.scalars(_usable(tenant_id, user_name).order_by(Authorisation.app_id))
    return list(rows)


async def is_admin(db: Executor, tenant_id: str, user_name: str) -> bool:
    query = _usable(tenant_id, user_name).where(Authorisation.role == ADMIN_ROLE).limit(1)
    return (await db.scalar(query)) is not None
