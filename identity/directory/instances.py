"""Instances: the order lifecycle (contract §4)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from identity.access import Reason, end_access
from identity.db import insert_for, utcnow
from identity.errors import InstanceNotFound
from identity.models import ACTIVE, FROZEN, RELEASED, Instance, TenantInstance


async def create_instance(
    session: AsyncSession, *, order_id: str, order_line_id: str, business_id: str
) -> str:
    """Idempotent per (orderId, orderLineId): the same instanceId every time, nothing new.

    The instanceId is the first request's businessId, as the contract recommends (§4.2); a
    fresh id only if that value already names another instance. DO NOTHING on any unique key
    makes a concurrent duplicate wait for the first insert, then find its row.
    """
    insert = insert_for(session)
    for candidate in (business_id, uuid.uuid4().hex):
        await session.execute(
            insert(Instance)
            .values(
                instance_id=candidate,
                order_id=order_id,
                order_line_id=order_line_id,
                business_id=business_id,
                status=ACTIVE,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
            .on_conflict_do_nothing()
        )
        found = await session.scalar(
            select(Instance.instance_id).where(
                Instance.order_id == order_id, Instance.order_line_id == order_line_id
            )
        )
        if found is not None:
            return found
    raise RuntimeError("could not allocate an instance id")  # two random ids taken: impossible


async def find_instances(session: AsyncSession, instance_ids: list[str]) -> list[Instance]:
    rows = await session.scalars(select(Instance).where(Instance.instance_id.in_(instance_ids)))
    by_id = {row.instance_id: row for row in rows}
    return [by_id[i] for i in instance_ids if i in by_id]


async def _get(session: AsyncSession, instance_id: str) -> Instance:
    instance = await session.get(Instance, instance_id, with_for_update=True)
    if instance is None:
        raise InstanceNotFound(f"instance {instance_id} does not exist")
    return instance


async def refresh_instance(
    session: AsyncSession,
    *,
    instance_id: str,
    expire_time: datetime,
    order_id: str,
    order_line_id: str,
    product_id: str | None,
) -> None:
    """Renewal, trial to formal, renewal cancelled: the new expiry is the marketplace's word."""
    instance = await _get(session, instance_id)
    instance.expire_time = expire_time
    instance.last_order_id, instance.last_order_line_id = order_id, order_line_id
    if product_id:
        instance.product_id = product_id


async def upgrade_instance(
    session: AsyncSession, *, instance_id: str, order_id: str, order_line_id: str
) -> None:
    instance = await _get(session, instance_id)
    instance.last_order_id, instance.last_order_line_id = order_id, order_line_id


async def set_frozen(session: AsyncSession, *, instance_id: str, frozen: bool) -> None:
    """FREEZE keeps every piece of data but ends access (§4.5); UNFREEZE restores it.

    A released instance stays released: neither status brings it back.
    """
    instance = await _get(session, instance_id)
    status = FROZEN if frozen else ACTIVE
    if instance.status in (RELEASED, status):  # repeats change nothing and end nothing again
        return
    instance.status = status
    if frozen:
        await _end_access_of_tenants(session, instance_id, Reason.INSTANCE_FROZEN)


async def release_instance(session: AsyncSession, *, instance_id: str) -> None:
    """Idempotent: a released instance answers success and nothing is redone (§4.6)."""
    instance = await _get(session, instance_id)
    if instance.status == RELEASED:
        return
    instance.status = RELEASED
    await _end_access_of_tenants(session, instance_id, Reason.INSTANCE_RELEASED)


async def _end_access_of_tenants(session: AsyncSession, instance_id: str, reason: Reason) -> None:
    """End access for tenants bound to this instance, unless another active instance holds them."""
    other = aliased(TenantInstance)
    still_live = exists().where(
        other.tenant_id == TenantInstance.tenant_id,
        other.instance_id != instance_id,
        other.state == ACTIVE,
        other.instance_id == Instance.instance_id,
        Instance.status == ACTIVE,
    )
    tenant_ids = await session.scalars(
        select(TenantInstance.tenant_id).where(
            and_(
                TenantInstance.instance_id == instance_id,
                TenantInstance.state == ACTIVE,
                ~still_live,
            )
        )
    )
    for tenant_id in sorted(tenant_ids):
        await end_access(session, tenant_id=tenant_id, reason=reason)
