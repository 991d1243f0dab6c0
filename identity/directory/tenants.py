"""Tenants and their per-app OAuth credentials (contract §3.1, §3.2)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from identity.access import Reason, end_access
from identity.crypto import Cipher
from identity.db import lock, utcnow
from identity.directory.sync import upsert_newer
from identity.models import ACTIVE, DELETED, AppCredential, Tenant, TenantInstance


def secret_context(tenant_id: str, app_id: str) -> str:
    """Associated data binding an encrypted client secret to its (tenant, app) row."""
    return f"app_credentials/{tenant_id}/{app_id}"


async def sync_tenant(
    session: AsyncSession,
    *,
    tenant_id: str,
    tenant_code: str,
    name: str,
    domain_name: str,
    instance_id: str,
    order_id: str,
    deleted: bool,
    sync_time: str,
) -> None:
    """Add, modify or delete a tenant's binding to an instance (§3.1, key instanceId+tenantId).

    A delete ends the tenant itself, and every member's access, only when no other instance
    still holds it (multi-instance binding); a delete with an empty instanceId (the seller's
    test tenant) ends it outright.
    """
    await lock(session, f"tenant/{tenant_id}")  # bindings, then the tenant, then bindings
    state = DELETED if deleted else ACTIVE
    if instance_id:
        bound = await upsert_newer(
            session,
            TenantInstance,
            BINDING_KEY,
            [_binding(tenant_id, instance_id, order_id, state, sync_time)],
        )
        if deleted and (not bound or await _still_bound(session, tenant_id)):
            return
    written = await upsert_newer(
        session,
        Tenant,
        ["tenant_id"],
        [
            {
                "tenant_id": tenant_id,
                "tenant_code": tenant_code,
                "name": name,
                "domain_name": domain_name,
                "state": state,
                "last_sync_time": sync_time,
            }
        ],
    )
    if deleted and written:
        await session.execute(
            update(TenantInstance)
            .where(
                TenantInstance.tenant_id == tenant_id,
                TenantInstance.state == ACTIVE,
                TenantInstance.last_sync_time <= sync_time,
            )
            .values(state=DELETED, last_sync_time=sync_time, updated_at=utcnow())
        )
        await end_access(session, tenant_id=tenant_id, reason=Reason.TENANT_DELETED)


BINDING_KEY = ["tenant_id", "instance_id"]


def _binding(
    tenant_id: str, instance_id: str, order_id: str, state: str, sync_time: str
) -> dict[str, str]:
    return {
        "tenant_id": tenant_id,
        "instance_id": instance_id,
        "order_id": order_id,
        "state": state,
        "last_sync_time": sync_time,
    }


async def _still_bound(session: AsyncSession, tenant_id: str) -> bool:
    found = await session.scalar(
        select(TenantInstance.instance_id)
        .where(TenantInstance.tenant_id == tenant_id, TenantInstance.state == ACTIVE)
        .limit(1)
    )
    return found is not None


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
