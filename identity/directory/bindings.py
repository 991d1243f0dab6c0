"""Whether a tenant is held by a purchase: the one predicate both the tenant syncs and the
instance lifecycle use, under one per-tenant lock.

A tenant is *bound* while it has an active binding to any instance (tenantSync is keyed by
instanceId+tenantId, §3.1), and *live* while one of those instances is active (not frozen or
released, §4.5, §4.6). Losing either ends its members' access. Both paths take the tenant's lock
before they look, so a release and an unbinding racing on PostgreSQL cannot each see the other's
row as still holding the tenant.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, or_, select, union
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapped

from identity.db import Tx, lock, lock_in
from identity.models import ACTIVE, AppCredential, Authorisation, Instance, Tenant, TenantInstance

BINDING_KEY = ["tenant_id", "instance_id"]


@dataclass(frozen=True)
class Hold:
    bound: bool
    live: bool

    def lost(self, before: Hold) -> bool:
        """True when this state took away what `before` gave: the moment access ends."""
        return (before.bound and not self.bound) or (before.live and not self.live)


async def lock_tenant(
    session: AsyncSession | AsyncConnection, tenant_id: str, *, shared: bool = False
) -> None:
    """Exclusive for what changes whether the tenant is held; shared for logins, which only
    need it to stay held until they commit."""
    await lock(session, _tenant_lock(tenant_id), shared=shared)


def lock_tenant_in(tx: Tx, tenant_id: str, *, shared: bool = False) -> None:
    """`lock_tenant` in a `Tx`'s transaction."""
    lock_in(tx, _tenant_lock(tenant_id), shared=shared)


def _tenant_lock(tenant_id: str) -> str:
    return f"tenant/{tenant_id}"


async def hold(session: AsyncSession, tenant_id: str) -> Hold:
    bound = exists().where(TenantInstance.tenant_id == tenant_id, TenantInstance.state == ACTIVE)
    live = bound.where(
        Instance.instance_id == TenantInstance.instance_id, Instance.status == ACTIVE
    )
    row = (await session.execute(select(bound, live))).one()
    return Hold(bound=bool(row[0]), live=bool(row[1]))


async def bound_to(session: AsyncSession, tenant_id: str, instance_id: str) -> bool:
    """Whether the tenant has an active binding to this instance."""
    found = await session.scalar(
        select(TenantInstance.state).where(
            TenantInstance.tenant_id == tenant_id,
            TenantInstance.instance_id == instance_id,
            TenantInstance.state == ACTIVE,
        )
    )
    return found is not None


async def ever_bound(session: AsyncSession, tenant_id: str) -> bool:
    """Whether a purchase ever bound the tenant (a binding row, even a tombstone): a customer's
    tenant, never the seller's own test tenant."""
    found = await session.scalar(
        select(TenantInstance.instance_id).where(TenantInstance.tenant_id == tenant_id).limit(1)
    )
    return found is not None


async def tenants_bound_to(session: AsyncSession, instance_id: str) -> list[str]:
    rows = await session.scalars(
        select(TenantInstance.tenant_id).where(
            TenantInstance.instance_id == instance_id, TenantInstance.state == ACTIVE
        )
    )
    return sorted(rows)


def open_for_sign_in() -> ColumnElement[bool]:
    """SQL, correlated to `Tenant` in the enclosing query: members may sign in while the tenant
    is live, or when it is the seller's own test tenant, which the seller-side syncs create
    without any instance (§0.4) and so was never bound."""
    binding = TenantInstance.tenant_id == Tenant.tenant_id
    live = exists().where(
        binding,
        TenantInstance.state == ACTIVE,
        Instance.instance_id == TenantInstance.instance_id,
        Instance.status == ACTIVE,
    )
    return or_(live, ~exists().where(binding))


def instance_live(
    tenant_id: ColumnElement[str] | Mapped[str], instance_id: ColumnElement[str] | Mapped[str]
) -> ColumnElement[bool]:
    """SQL, correlated to the enclosing query: the instance an app credential or authorisation
    came with is bound to its tenant and active. A tenant may hold several products, each its
    own instance (§0.4); freezing or releasing one ends access to its apps only. An empty
    instanceId (the seller's own test tenant) ties the row to no instance."""
    return or_(
        instance_id == "",
        exists().where(
            TenantInstance.tenant_id == tenant_id,
            TenantInstance.instance_id == instance_id,
            TenantInstance.state == ACTIVE,
            Instance.instance_id == instance_id,
            Instance.status == ACTIVE,
        ),
    )


async def apps_of_instance(session: AsyncSession, tenant_id: str, instance_id: str) -> list[str]:
    """The tenant's apps whose credential or authorisations came with this instance."""
    rows = await session.scalars(
        union(
            select(AppCredential.app_id).where(
                AppCredential.tenant_id == tenant_id, AppCredential.instance_id == instance_id
            ),
            select(Authorisation.app_id).where(
                Authorisation.tenant_id == tenant_id, Authorisation.instance_id == instance_id
            ),
        )
    )
    return sorted(rows)
