"""Read models for operators (`identity tenants list|show --json`). No secret is ever read."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from identity.models import (
    ACTIVE,
    DELETED,
    AppCredential,
    Authorisation,
    Department,
    Instance,
    Member,
    Tenant,
    TenantInstance,
)


def _tenant(t: Tenant) -> dict[str, Any]:
    return {
        "tenantId": t.tenant_id,
        "tenantCode": t.tenant_code,
        "name": t.name,
        "domainName": t.domain_name,
        "state": t.state,
    }


async def list_tenants(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.scalars(select(Tenant).order_by(Tenant.tenant_id))
    return [_tenant(t) for t in rows]


def _member_state(member: Member, auth: Authorisation) -> str:
    if DELETED in (member.state, auth.state):
        return DELETED
    return auth.state


async def show_tenant(session: AsyncSession, ref: str) -> dict[str, Any] | None:
    """The stable operator format of the foundation issue: one row per member authorisation.
    `ref` is the tenant id or, failing that, its code (in any case; a live tenant first)."""
    tenant = await session.get(Tenant, ref) or await session.scalar(
        select(Tenant)
        .where(func.lower(Tenant.tenant_code) == ref.lower())
        .order_by(Tenant.state != ACTIVE, Tenant.updated_at.desc())
        .limit(1)
    )
    if tenant is None:
        return None
    tenant_id = tenant.tenant_id
    return {
        "tenant": _tenant(tenant),
        "instances": await _instances(session, tenant_id),
        "apps": await _apps(session, tenant_id),
        "departments": await _departments(session, tenant_id),
        "members": await _members(session, tenant_id),
    }


async def _instances(session: AsyncSession, tenant_id: str) -> list[dict[str, Any]]:
    rows = await session.scalars(
        select(Instance)
        .join(TenantInstance, TenantInstance.instance_id == Instance.instance_id)
        .where(TenantInstance.tenant_id == tenant_id, TenantInstance.state == ACTIVE)
        .order_by(Instance.instance_id)
    )
    return [
        {
            "instanceId": i.instance_id,
            "orderId": i.order_id,
            "orderLineId": i.order_line_id,
            "status": i.status,
            "productId": i.product_id,
            "expireTime": i.expire_time.isoformat() if i.expire_time else None,
            "orderState": i.order_state,
        }
        for i in rows
    ]


async def _apps(session: AsyncSession, tenant_id: str) -> list[dict[str, Any]]:
    """Only these three columns are read: the encrypted secret never leaves the table."""
    rows = await session.execute(
        select(AppCredential.app_id, AppCredential.client_id, AppCredential.state)
        .where(AppCredential.tenant_id == tenant_id)
        .order_by(AppCredential.app_id)
    )
    return [{"appId": a, "clientId": c, "state": s} for a, c, s in rows]


async def _departments(session: AsyncSession, tenant_id: str) -> list[dict[str, Any]]:
    rows = await session.scalars(
        select(Department)
        .where(Department.tenant_id == tenant_id, Department.state == ACTIVE)
        .order_by(Department.org_code)
    )
    return [{"orgCode": d.org_code, "name": d.name, "parentCode": d.parent_code} for d in rows]


async def _members(session: AsyncSession, tenant_id: str) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(Member, Authorisation)
        .join(
            Authorisation,
            (Authorisation.tenant_id == Member.tenant_id)
            & (Authorisation.user_name == Member.user_name),
        )
        .where(Member.tenant_id == tenant_id)
        .order_by(Member.user_name, Authorisation.app_id)
    )
    return [
        {
            "userName": m.user_name,
            "name": m.name,
            "orgCode": m.org_code,
            "role": a.role,
            "enabled": a.enabled,
            "state": _member_state(m, a),
            "email": m.email,
            "mobile": m.mobile,
        }
        for m, a in rows
    ]
