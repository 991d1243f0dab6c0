"""Instances: the order lifecycle (contract §4). Each change says what it did and to which
tenants (`InstanceChanged`), for the call's audit row."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from identity.access import Reason, end_access
from identity.db import insert_for, utcnow
from identity.directory import bindings
from identity.errors import InstanceNotFound
from identity.models import ACTIVE, FROZEN, RELEASED, Instance

_PLAIN_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class InstanceChanged:
    """What an order-lifecycle call did."""

    tenant_ids: list[str] = field(default_factory=list)
    """The tenants bound to the instance (active bindings), in id order."""
    changed: bool = True
    """False for a repeat that changed nothing (frozen again, released again)."""
    sessions_ended: int = 0


@dataclass(frozen=True)
class AppsEnded:
    """Access ended to the apps of one instance of a tenant."""

    apps: int
    sessions_ended: int


async def create_instance(
    session: AsyncSession, *, order_id: str, order_line_id: str, business_id: str
) -> str:
    """Idempotent per (orderId, orderLineId): the same instanceId every time, nothing new.

    The instanceId is the first request's businessId, as the contract recommends (§4.2); a
    fresh id if that value already names another instance or is not a plain identifier.
    DO NOTHING on any unique key makes a concurrent duplicate wait for the first insert, then
    find its row.
    """
    insert = insert_for(session)
    candidates = [business_id] if _PLAIN_ID.match(business_id) else []  # query splits on ","
    for candidate in [*candidates, uuid.uuid4().hex]:
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


async def order_confirmed(session: AsyncSession, order_id: str, order_line_id: str) -> bool:
    """Whether the order line has an instance whose order needs no asking: confirmed, or made
    without asking (no order state)."""
    state = await session.execute(
        select(Instance.order_state).where(
            Instance.order_id == order_id, Instance.order_line_id == order_line_id
        )
    )
    row = state.first()
    return row is not None and row[0] in (None, "confirmed")


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
) -> InstanceChanged:
    """Renewal, trial to formal, renewal cancelled: the new expiry is the marketplace's word."""
    instance = await _get(session, instance_id)
    instance.expire_time = expire_time
    instance.last_order_id, instance.last_order_line_id = order_id, order_line_id
    if product_id:
        instance.product_id = product_id
    return InstanceChanged(await bindings.tenants_bound_to(session, instance_id))


async def upgrade_instance(
    session: AsyncSession, *, instance_id: str, order_id: str, order_line_id: str
) -> InstanceChanged:
    instance = await _get(session, instance_id)
    instance.last_order_id, instance.last_order_line_id = order_id, order_line_id
    return InstanceChanged(await bindings.tenants_bound_to(session, instance_id))


async def set_frozen(session: AsyncSession, *, instance_id: str, frozen: bool) -> InstanceChanged:
    """FREEZE keeps every piece of data but ends access (§4.5); UNFREEZE restores it.

    A released instance stays released: neither status brings it back.
    """
    instance = await _get(session, instance_id)
    status = FROZEN if frozen else ACTIVE
    if instance.status in (RELEASED, status):  # repeats change nothing and end nothing again
        return InstanceChanged(await bindings.tenants_bound_to(session, instance_id), False)
    return await _change_status(session, instance, status, Reason.INSTANCE_FROZEN)


async def release_instance(session: AsyncSession, *, instance_id: str) -> InstanceChanged:
    """Idempotent: a released instance answers success and nothing is redone (§4.6)."""
    instance = await _get(session, instance_id)
    if instance.status == RELEASED:
        return InstanceChanged(await bindings.tenants_bound_to(session, instance_id), False)
    return await _change_status(session, instance, RELEASED, Reason.INSTANCE_RELEASED)


async def _change_status(
    session: AsyncSession, instance: Instance, status: str, reason: Reason
) -> InstanceChanged:
    """Change the status, and end access to the instance's apps in every bound tenant; to the
    whole tenant when no other live instance holds it.

    The instance row is locked (FOR UPDATE) first, then each tenant in id order; tenant syncs
    take only tenant locks, so the two paths cannot deadlock.
    """
    tenant_ids = await bindings.tenants_bound_to(session, instance.instance_id)
    for tenant_id in tenant_ids:
        await bindings.lock_tenant(session, tenant_id)
    before = {t: await bindings.hold(session, t) for t in tenant_ids}
    was_live = instance.status == ACTIVE
    instance.status = status
    await session.flush()
    ended = 0
    for tenant_id in tenant_ids:
        if (await bindings.hold(session, tenant_id)).lost(before[tenant_id]):
            ended += await end_access(session, tenant_id=tenant_id, reason=reason)
        elif was_live:
            stopped = await end_instance_apps(session, tenant_id, instance.instance_id, reason)
            ended += stopped.sessions_ended
    return InstanceChanged(tenant_ids, sessions_ended=ended)


async def end_instance_apps(
    session: AsyncSession, tenant_id: str, instance_id: str, reason: Reason
) -> AppsEnded:
    """End access to the apps that came with one instance of a tenant still held by another."""
    apps = await bindings.apps_of_instance(session, tenant_id, instance_id)
    ended = 0
    for app_id in apps:
        ended += await end_access(session, tenant_id=tenant_id, app_id=app_id, reason=reason)
    return AppsEnded(len(apps), ended)
