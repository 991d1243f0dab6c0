"""Tenants and their per-app OAuth credentials (contract §3.1, §3.2). Each sync says what it did
(`TenantSynced`, `CredentialSynced`), for the call's audit row."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

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


@dataclass
class TenantSynced:
    """What one tenantSync did to the enterprise."""

    created: bool = False
    """The enterprise is new here."""
    bound: bool = False
    """Newly bound to the call's subscription (instance)."""
    unbound: bool = False
    """Unbound from it (for the seller's test tenant, from every one)."""
    removed: bool = False
    """No binding is left: the enterprise is removed."""
    signed_out: bool = False
    """Access ended for the whole enterprise: every member signed out."""
    apps_stopped: bool = False
    """Access ended to the apps of the unbound subscription only (another still holds it)."""
    sessions_ended: int = 0


class CredentialChange(StrEnum):
    """What an applicationSync did to the app's credential."""

    BOUND = "bound"
    """New, or back after it was removed: members can sign in to the app."""
    UPDATED = "updated"
    UNBOUND = "unbound"
    STALE = "stale"
    """Older than what is stored: nothing changed (contract §7)."""


@dataclass(frozen=True)
class CredentialSynced:
    app_id: str
    change: CredentialChange
    sessions_ended: int = 0


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
) -> TenantSynced:
    """tenantSync (§3.1): 1 binds the tenant to the instance, 0 unbinds it, 2 changes only the
    tenant's name and domain. The tenant is deleted while no binding is left, and its members'
    access ends when it loses its last binding or its last live instance; unbinding one of
    several instances ends access to that instance's apps only. The seller's own test
    tenant (empty instanceId) has no binding: the flag decides its state directly.
    """
    await bindings.lock_tenant(session, tenant_id)
    before = await bindings.hold(session, tenant_id)
    existed = await session.scalar(select(Tenant.state).where(Tenant.tenant_id == tenant_id))
    attributes = {
        "tenant_id": tenant_id,
        "tenant_code": tenant_code,
        "name": name,
        "domain_name": domain_name,
        "last_sync_time": sync_time,
    }
    if not instance_id:
        done = await _sync_unbound_tenant(session, attributes, deleted=flag == 0)
        done.created = existed is None and flag != 0
        done.removed = done.removed and existed == ACTIVE
        return done
    await upsert_newer(session, Tenant, ["tenant_id"], [attributes], returning=False)
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
    bound_now = await bindings.bound_to(session, tenant_id, instance_id)
    done = TenantSynced(
        created=existed is None and after.bound,
        bound=bound_now and not was_bound_to_instance,
        unbound=was_bound_to_instance and not bound_now,
        removed=before.bound and not after.bound,
    )
    if after.lost(before):
        done.signed_out = True
        done.sessions_ended = await end_access(
            session, tenant_id=tenant_id, reason=Reason.TENANT_DELETED
        )
    elif done.unbound:
        stopped = await end_instance_apps(session, tenant_id, instance_id, Reason.INSTANCE_UNBOUND)
        done.apps_stopped, done.sessions_ended = stopped.apps > 0, stopped.sessions_ended
    return done


async def _sync_unbound_tenant(
    session: AsyncSession, attributes: dict[str, str], *, deleted: bool
) -> TenantSynced:
    """The seller's own test tenant, or a delete of every binding at once."""
    state = {"state": DELETED if deleted else ACTIVE}
    if await upsert_newer(session, Tenant, ["tenant_id"], [{**attributes, **state}]) and deleted:
        tenant_id, sync_time = attributes["tenant_id"], attributes["last_sync_time"]
        unbound = await _unbind_all(session, tenant_id, sync_time)
        ended = await end_access(session, tenant_id=tenant_id, reason=Reason.TENANT_DELETED)
        return TenantSynced(unbound=unbound, removed=True, signed_out=True, sessions_ended=ended)
    return TenantSynced()


async def _unbind_all(session: AsyncSession, tenant_id: str, sync_time: str) -> bool:
    """Whether a binding was there to remove."""
    removed = await session.execute(
        update(TenantInstance)
        .where(
            TenantInstance.tenant_id == tenant_id,
            TenantInstance.state == ACTIVE,
            TenantInstance.last_sync_time <= sync_time,
        )
        .values(state=DELETED, last_sync_time=sync_time, updated_at=utcnow())
    )
    return bool(removed.rowcount)  # type: ignore[attr-defined]


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
) -> CredentialSynced:
    """Store the (tenant, app) OAuth client; `client_secret=None` deletes it and ends access."""
    deleted = client_secret is None
    stored = await session.scalar(
        select(AppCredential.state).where(
            AppCredential.tenant_id == tenant_id, AppCredential.app_id == app_id
        )
    )
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
    if not applied:
        return CredentialSynced(app_id, CredentialChange.STALE)
    if deleted:
        ended = await end_access(
            session, tenant_id=tenant_id, app_id=app_id, reason=Reason.APP_CREDENTIAL_DELETED
        )
        return CredentialSynced(app_id, CredentialChange.UNBOUND, ended)
    change = CredentialChange.UPDATED if stored == ACTIVE else CredentialChange.BOUND
    return CredentialSynced(app_id, change)
