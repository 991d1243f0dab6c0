"""Tenants and their per-app OAuth credentials (contract §3.1, §3.2)."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from identity.access import Reason, end_access
from identity.crypto import Cipher
from identity.db import insert_for
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
    """Add, modify or delete a tenant. A delete ends every member's access."""
    applied = await upsert_newer(
        session,
        Tenant,
        ["tenant_id"],
        [
            {
                "tenant_id": tenant_id,
                "tenant_code": tenant_code,
                "name": name,
                "domain_name": domain_name,
                "state": DELETED if deleted else ACTIVE,
                "last_sync_time": sync_time,
            }
        ],
    )
    if deleted:
        if applied:
            await session.execute(
                delete(TenantInstance).where(TenantInstance.tenant_id == tenant_id)
            )
            await end_access(session, tenant_id=tenant_id, reason=Reason.TENANT_DELETED)
    elif instance_id:
        # The binding's key is (instanceId, tenantId) (§3.1): a call older than the stored
        # tenant attributes still binds its own instance, e.g. a second instance bound late.
        insert = insert_for(session)
        await session.execute(
            insert(TenantInstance)
            .values(tenant_id=tenant_id, instance_id=instance_id, order_id=order_id)
            .on_conflict_do_nothing()
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
