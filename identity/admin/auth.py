"""Who may use the console: a signed-in member who is an admin of their tenant
(`identity.directory.eligibility.admin_of`), checked again on every request (a lost role or lost
access ends admin rights at once, on pages already open too). The tenant is the session's, never
a request's: a request naming another tenant (a `tenant`-like query parameter, or
`userName@otherCode`) is refused with 403 before any of that tenant's data is looked up, so
refusals reveal nothing about other tenants. A reference names a tenant as `/sso/login` reads it
(`admission.find_tenant`): an exact tenant id first, then a code, so a tenant whose code is
another tenant's id cannot pass that other tenant off as its own.

Also the acting admin's password-reset calls, with the app's sender, shared by the API and the
pages."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Header, Request

from identity import web
from identity.admin import resets
from identity.admin.errors import CsrfFailed, NotAdmin, OtherTenant, Unauthenticated, delivering
from identity.admin.inputs import tenant_references
from identity.db import Database, utcnow
from identity.directory import eligibility
from identity.observability import bind
from identity.sso import admission
from identity.sso.refusals import Refusal


@dataclass(frozen=True)
class Admin:
    tenant_id: str
    tenant_code: str
    user_name: str
    name: str
    raw_session_id: str
    csrf_token: str
    database: Database = field(repr=False, compare=False)

    async def names_own_tenant(self, reference: str) -> bool:
        """Whether `reference` (a tenant id or code) names this admin's tenant, matched as
        `/sso/login` matches it: an id before any code."""
        if reference == self.tenant_id:
            return True
        async with self.database.single_read() as conn:
            try:
                return await admission.find_tenant(conn, reference) == self.tenant_id
            except Refusal:  # no such tenant, or a code two live tenants share
                return False

    async def own_member(self, reference: str) -> str:
        """`userName`, or `userName@tenant` (id or code) of this tenant: the user name;
        another tenant named is 403."""
        user_name, at, tenant = reference.rpartition("@")
        if not at:
            return reference
        if not await self.names_own_tenant(tenant):
            raise OtherTenant()
        return user_name


async def current_admin(request: Request) -> Admin:
    sessions = web.sessions(request)
    raw_id = request.cookies.get(sessions.cookies.session)
    signed_in = await sessions.current(raw_id)
    if signed_in is None or raw_id is None:
        raise Unauthenticated()
    bind(tenant_id=signed_in.tenant_id)
    database = web.database(request)
    async with database.read() as db:
        allowed = await eligibility.is_admin(db, signed_in.tenant_id, signed_in.user_name)
    if not allowed:
        raise NotAdmin(signed_in)
    admin = Admin(
        signed_in.tenant_id,
        signed_in.tenant_code,
        signed_in.user_name,
        signed_in.name,
        raw_id,
        sessions.csrf_token(raw_id),
        database,
    )
    for reference in tenant_references(request):
        if not await admin.names_own_tenant(reference):
            raise OtherTenant()
    return admin


def check_csrf(request: Request, admin: Admin, token: str | None) -> None:
    """Unsafe requests carry the session's CSRF token (`csrfToken` of `/sso/session`)."""
    sessions = web.sessions(request)
    if not token or not sessions.csrf_ok(admin.raw_session_id, token):
        raise CsrfFailed()


async def writing_admin(request: Request, x_csrf_token: str | None = Header(None)) -> Admin:
    admin = await current_admin(request)
    check_csrf(request, admin, x_csrf_token)
    return admin


async def request_reset(request: Request, admin: Admin, target: str) -> resets.ResetRequested:
    """Step 1 of a reset of `target` by this admin (`resets.request_reset`); a message that
    could not be sent is `Undeliverable`."""
    with delivering():
        return await resets.request_reset(
            web.database(request),
            web.notifier(request),
            web.reset_mac(request),
            tenant_id=admin.tenant_id,
            admin_user_name=admin.user_name,
            target_user_name=target,
            now=utcnow(),
        )


async def confirm_reset(request: Request, admin: Admin, reset_id: str, code: str) -> None:
    """Step 2 (`resets.confirm_reset`), with the code as typed (spaces around it ignored)."""
    with delivering():
        await resets.confirm_reset(
            web.database(request),
            web.notifier(request),
            web.reset_mac(request),
            tenant_id=admin.tenant_id,
            admin_user_name=admin.user_name,
            reset_id=reset_id,
            code=code.strip(),
            now=utcnow(),
        )
