"""What a login must pass (contract §5.2 steps 4 and 7), as two statements built once; and
the look-ups of a tenant the pages need around it (its auth centre's logout, names).

The first reads, before the auth centre is called, whether the tenant may sign in and with which
client. The second runs in the transaction that creates the session and checks everything
again, holding the tenant's lock shared and the rows it read FOR SHARE (the same locks every
de-provisioning path needs exclusively), so a sync that ends access either waits for the login
to commit and then ends its session, or commits first and the login is refused.

Both are built once, with bind parameters, and run on a Core connection (no ORM session): a
login then costs two queries (plus the lock and the insert), without rebuilding or re-keying
the statements each time.
"""

from __future__ import annotations

from urllib.parse import urlencode

from sqlalchemy import bindparam, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from identity.crypto import Cipher
from identity.directory import bindings
from identity.directory.tenants import secret_context
from identity.models import ACTIVE, AppCredential, Authorisation, Department, Member, Tenant
from identity.sso.refusals import Refusal
from identity.sso.upstream import LOGOUT_PATH, Client, normalise_domain

_CLIENT = (
    select(
        Tenant.state,
        Tenant.domain_name,
        bindings.open_for_sign_in(),
        AppCredential.state,
        AppCredential.client_id,
        AppCredential.client_secret_enc,
        bindings.instance_live(AppCredential.tenant_id, AppCredential.instance_id),
    )
    .outerjoin(
        AppCredential,
        (AppCredential.tenant_id == Tenant.tenant_id)
        & (AppCredential.app_id == bindparam("app_id")),
    )
    .where(Tenant.tenant_id == bindparam("tenant_id"))
)

_ADMISSION = (
    select(
        Tenant.state,
        bindings.open_for_sign_in(),
        AppCredential.state,
        Member.state,
        Member.huawei_user_id,
        Authorisation.state,
        Authorisation.enabled,
        bindings.instance_live(AppCredential.tenant_id, AppCredential.instance_id)
        & bindings.instance_live(Authorisation.tenant_id, Authorisation.instance_id),
    )
    .join(AppCredential, AppCredential.tenant_id == Tenant.tenant_id)
    .join(Member, Member.tenant_id == Tenant.tenant_id)
    .join(
        Authorisation,
        (Authorisation.tenant_id == Tenant.tenant_id)
        & (Authorisation.app_id == AppCredential.app_id)
        & (Authorisation.user_name == Member.user_name),
    )
    .where(
        Tenant.tenant_id == bindparam("tenant_id"),
        AppCredential.app_id == bindparam("app_id"),
        Member.user_name == bindparam("user_name"),
    )
    .with_for_update(read=True, of=[Tenant, AppCredential, Member, Authorisation])
)


async def tenant_client(
    connection: AsyncConnection, cipher: Cipher, tenant_id: str, app_id: str
) -> Client:
    """The tenant must exist, not be deleted, be open for sign-in (a live instance, or the
    seller's test tenant) and hold a credential for this app whose own instance is live; its
    client, secret decrypted."""
    params = {"tenant_id": tenant_id, "app_id": app_id}
    row = (await connection.execute(_CLIENT, params)).one_or_none()
    where = f"tenant {tenant_id!r} app {app_id!r}"
    if row is None:
        raise Refusal("tenant_unknown", where)
    tenant_state, domain, open_, credential_state, client_id, secret_enc, app_live = row
    if tenant_state != ACTIVE:
        raise Refusal("tenant_deleted", where)
    if not open_:
        raise Refusal("instance_inactive", where)
    if credential_state != ACTIVE or not secret_enc:
        raise Refusal("app_not_configured", where)
    if not app_live:
        raise Refusal("instance_inactive", f"{where}: the app's instance is not live")
    secret = cipher.decrypt(secret_enc, secret_context(tenant_id, app_id))
    return Client(normalise_domain(domain), client_id, secret)


async def admit(
    connection: AsyncConnection, cipher: Cipher, tenant_id: str, app_id: str, user_name: str
) -> None:
    """The member must be authorised for this app, enabled, and not deleted, and everything
    `tenant_client` required must still hold."""
    await bindings.lock_tenant(connection, tenant_id, shared=True)
    params = {"tenant_id": tenant_id, "app_id": app_id, "user_name": user_name}
    row = (await connection.execute(_ADMISSION, params)).one_or_none()
    detail = f"tenant {tenant_id!r} app {app_id!r} user {user_name!r}"
    if row is None or not (row[0] == ACTIVE and row[1] and row[2] == ACTIVE):
        await tenant_client(connection, cipher, tenant_id, app_id)  # names the tenant's problem
        raise Refusal("member_unknown", detail)
    _, _, _, member_state, _, auth_state, enabled, app_live = row
    if member_state != ACTIVE:
        raise Refusal("member_deleted", detail)
    if auth_state != ACTIVE:
        raise Refusal("authorisation_cancelled", detail)
    if not enabled:
        raise Refusal("member_disabled", detail)
    if not app_live:
        raise Refusal("instance_inactive", f"{detail}: the app's instance is not live")


async def find_tenant(conn: AsyncConnection, ref: str) -> str:
    """Flow B names the tenant by id or by tenantCode. An exact id always wins, whatever
    another tenant's code is (a tenant must not take over another's login by choosing its id
    as code); then the code, a live tenant before a deleted one that once had it. A code two
    live tenants share names neither: which one is meant cannot be told, so the member must
    use the tenant id (or the unified login). Codes are matched without regard to case."""
    rows = (
        await conn.execute(
            select(Tenant.tenant_id, Tenant.state)
            .where(or_(Tenant.tenant_id == ref, func.lower(Tenant.tenant_code) == ref.lower()))
            .order_by(
                case((Tenant.tenant_id == ref, 0), else_=1),
                case((Tenant.state == ACTIVE, 0), else_=1),
                Tenant.updated_at.desc(),
            )
            .limit(2)
        )
    ).all()
    if not rows:
        raise Refusal("tenant_unknown", f"tenant {ref!r}")
    (first, state), rest = rows[0], rows[1:]
    if first != ref and state == ACTIVE and rest and rest[0][1] == ACTIVE:
        raise Refusal("tenant_unknown", f"tenant code {ref!r} is shared by live tenants")
    return str(first)


async def tenant_code(conn: AsyncConnection, tenant_id: str) -> str:
    code = await conn.scalar(select(Tenant.tenant_code).where(Tenant.tenant_id == tenant_id))
    return str(code)


async def only_app(conn: AsyncConnection, tenant_id: str) -> str:
    apps = (
        await conn.scalars(
            select(AppCredential.app_id).where(
                AppCredential.tenant_id == tenant_id, AppCredential.state == ACTIVE
            )
        )
    ).all()
    if len(apps) != 1:
        raise Refusal("bad_request" if apps else "app_not_configured", "app not given")
    return apps[0]


async def upstream_logout(conn: AsyncConnection, tenant_id: str, back_url: str) -> str | None:
    """The tenant's auth centre's logout URL (§5.2 step 9), sending the browser on to
    `back_url`; None for an unknown tenant."""
    domain = await conn.scalar(select(Tenant.domain_name).where(Tenant.tenant_id == tenant_id))
    if domain is None:
        return None
    return f"{normalise_domain(domain)}{LOGOUT_PATH}?{urlencode({'redirect_url': back_url})}"


async def names(conn: AsyncConnection, tenant_id: str, org_code: str) -> tuple[str, str | None]:
    """The enterprise's name and the department's (None when no department has the code)."""
    department = (Department.tenant_id == Tenant.tenant_id) & (Department.org_code == org_code)
    row = (
        await conn.execute(
            select(Tenant.name, Tenant.tenant_code, Department.name)
            .outerjoin(Department, department)
            .where(Tenant.tenant_id == tenant_id)
        )
    ).one()
    return row[0] or row[1], row[2]
