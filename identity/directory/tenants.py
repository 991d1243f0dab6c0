"""Tenants and their per-app OAuth credentials (contract §3.1, §3.2)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from identity.access import Reason, end_access
from identity.crypto import Cipher, Context
from identity.db import utcnow
from identity.directory import bindings
from identity.directory.domains import DomainRefused, auth_centre_origin
from identity.directory.instances import end_instance_apps
from identity.directory.sync import upsert_newer
from identity.models import ACTIVE, DELETED, AppCredential, Tenant, TenantInstance


async def refused_domains(
    session: AsyncSession, *, allow_loopback_http: bool
) -> list[tuple[str, str]]:
    """Live tenants whose stored `domainName` a tenantSync would now refuse, with the reason.

    They were stored before the check existed and keep working until their next tenantSync;
    the service names them at start so the operator can follow up."""
    rows = await session.execute(
        select(Tenant.tenant_id, Tenant.domain_name).where(Tenant.state == ACTIVE)
    )
    refused = []
    for tenant_id, domain_name in rows:
        try:
            auth_centre_origin(domain_name, allow_loopback_http=allow_loopback_http)
        except DomainRefused as exc:
            refused.append((tenant_id, str(exc)))
    return refused


def secret_context(tenant_id: str, app_id: str) -> Context:
    """Associated data binding an encrypted client secret to its (tenant, app) row."""
    return ("app_credentials", tenant_id, app_id)


async def sync_tenant(
    session: AsyncSession,
    *,
    tenant_id: str,
    tenant_code: str,
    name: str,
    domain_name: str,
    instance_id: str,
    order_id: str,
    flag: int,
    sync_time: str,
) -> None:
    """tenantSync (§3.1): 1 binds the tenant to the instance, 0 unbinds it, 2 changes only the
    tenant's name and domain. The tenant is deleted while no binding is left, and its members'
    access ends when it loses its last binding or its last live instance; unbinding one of
    several instances ends access to that instance's apps only. The seller's own test
    tenant (empty instanceId) has no binding: the flag decides its state directly.
    """
    await bindings.lock_tenant(session, tenant_id)
    before = await bindings.hold(session, tenant_id)
    attributes = {
        "tenant_id": tenant_id,
        "tenant_code": tenant_code,
        "name": name,
        "domain_name": domain_name,
        "last_sync_time": sync_time,
    }
    if not instance_id:
        await _sync_unbound_tenant(session, attributes, deleted=flag == 0)
        return
    await upsert_newer(session, Tenant, ["tenant_id"], [attributes])
    was_bound_to_instance = await bindings.bound_to(session, tenant_id, instance_id)
    if flag != 2:
        binding = {
            "tenant_id": tenant_id,
            "instance_id": instance_id,
            "order_id": order_id,
            "state": DELETED if flag == 0 else ACTIVE,
            "last_sync_time": sync_time,
        }
        await upsert_newer(session, TenantInstance, bindings.BINDING_KEY, [binding])
    after = await bindings.hold(session, tenant_id)
    await session.execute(
        update(Tenant)
        .where(Tenant.tenant_id == tenant_id)
        .values(state=ACTIVE if after.bound else DELETED)
    )
    if after.lost(before):
        await end_access(session, tenant_id=tenant_id, reason=Reason.TENANT_DELETED)
    elif was_bound_to_instance and not await bindings.bound_to(session, tenant_id, instance_id):
        await end_instance_apps(session, tenant_id, instance_id, Reason.INSTANCE_UNBOUND)


async def _sync_unbound_tenant(
    session: AsyncSession, attributes: dict[str, str], *, deleted: bool
) -> None:
    """The seller's own test tenant, or a delete of every binding at once."""
    state = {"state": DELETED if deleted else ACTIVE}
    if await upsert_newer(session, Tenant, ["tenant_id"], [{**attributes, **state}]) and deleted:
        tenant_id, sync_time = attributes["tenant_id"], attributes["last_sync_time"]
        await _unbind_all(session, tenant_id, sync_time)
        await end_access(session, tenant_id=tenant_id, reason=Reason.TENANT_DELETED)


async def _unbind_all(session: AsyncSession, tenant_id: str, sync_time: str) -> None:
    await session.execute(
        update(TenantInstance)
        .where(
            TenantInstance.tenant_id == tenant_id,
            TenantInstance.state == ACTIVE,
            TenantInstance.last_sync_time <= sync_time,
        )
        .values(state=DELETED, last_sync_time=sync_time, updated_at=utcnow())
    )


async def sync_app_credential(
    session: AsyncSession,
    cipher: Cipher,
    *,
    tenant_id: str,
    app_id: str,
    instance_id: str,
    client_id: str,
    client_secret: str | None,
    sync_time: str,
) -> None:
    """Store the (tenant, app) OAuth client; `client_secret=None` deletes it and ends access."""
    deleted = client_secret is None
    applied = await upsert_newer(
        session,
        AppCredential,
        ["tenant_id", "app_id"],
        [
            {
                "tenant_id": tenant_id,
                "app_id": app_id,
                "instance_id": instance_id,
                "client_id": client_id,
                "client_secret_enc": None
                if client_secret is None
                else cipher.encrypt(client_secret, secret_context(tenant_id, app_id)),
                "state": DELETED if deleted else ACTIVE,
                "last_sync_time": sync_time,
            }
        ],
    )
    if applied and deleted:
        await end_access(
            session, tenant_id=tenant_id, app_id=app_id, reason=Reason.APP_CREDENTIAL_DELETED
        )
