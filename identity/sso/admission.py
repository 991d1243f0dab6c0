"""What a login must pass (contract §5.2 steps 4 and 7): the eligibility rule
(`identity.directory.eligibility`), as two statements built once; and the look-ups of a tenant
the pages need around it (its auth centre's logout, the signed-in member's profile).

Each statement selects the rule's conditions as flags; the first that fails names the refusal.
The first reads, before the auth centre is called, whether the tenant and the app may sign in
and with which client. The second runs in the transaction that creates the session and checks
everything again, holding the tenant's lock shared and the rows it read FOR SHARE (the same
locks every de-provisioning path needs exclusively), so a sync that ends access either waits
for the login to commit and then ends its session, or commits first and the login is refused.

Both are built once, with bind parameters, and run on a Core connection (no ORM session): a
login then costs two queries (plus the lock and the insert), without rebuilding or re-keying
the statements each time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import bindparam, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from identity.crypto import Cipher
from identity.db import Database, Tx
from identity.directory import bindings, eligibility
from identity.directory.eligibility import Condition
from identity.directory.tenants import secret_context
from identity.models import ACTIVE, AppCredential, Authorisation, Department, Member, Tenant
from identity.pg_cache import cacheable
from identity.sso.refusals import Refusal
from identity.sso.upstream import LOGOUT_PATH, Client, normalise_domain

_CLIENT = cacheable(
    select(
        Tenant.domain_name,
        AppCredential.client_id,
        AppCredential.client_secret_enc,
        *eligibility.flags(eligibility.TENANT_AND_APP),
    )
    .outerjoin(
        AppCredential,
        (AppCredential.tenant_id == Tenant.tenant_id)
        & (AppCredential.app_id == bindparam("app_id")),
    )
    .where(Tenant.tenant_id == bindparam("tenant_id"))
)

_ADMISSION = (
    select(*eligibility.flags(eligibility.RULE))
    .select_from(Tenant)
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

_CREDENTIAL = eligibility.TENANT_AND_APP.index(eligibility.APP_ACTIVE)


def _refuse(condition: Condition | None, where: str) -> None:
    if condition is not None:
        detail = f"{where}: {condition.detail}" if condition.detail else where
        raise Refusal(condition.refusal, detail)


async def tenant_client(
    connection: AsyncConnection, cipher: Cipher, tenant_id: str, app_id: str
) -> Client:
    """The tenant and the app must pass their part of the rule (`eligibility.TENANT_AND_APP`),
    the app's credential holding its secret; the app's client, secret decrypted."""
    params = {"tenant_id": tenant_id, "app_id": app_id}
    row = (await connection.execute(_CLIENT, params)).one_or_none()
    return _client(row, cipher, tenant_id, app_id)


async def read_client(db: Database, cipher: Cipher, tenant_id: str, app_id: str) -> Client:
    """`tenant_client` as a single read of its own (`Database.read_one`)."""
    row = await db.read_one(_CLIENT, {"tenant_id": tenant_id, "app_id": app_id})
    return _client(row, cipher, tenant_id, app_id)


def _client(row: Any, cipher: Cipher, tenant_id: str, app_id: str) -> Client:
    where = f"tenant {tenant_id!r} app {app_id!r}"
    if row is None:
        raise Refusal("tenant_unknown", where)
    domain, client_id, secret_enc, *held = row
    if not secret_enc:  # a login needs the credential's secret: without it, not configured
        held[_CREDENTIAL] = False
    _refuse(eligibility.refusal(eligibility.TENANT_AND_APP, held), where)
    assert secret_enc  # held[_CREDENTIAL]
    secret = cipher.decrypt(secret_enc, secret_context(tenant_id, app_id))
    return Client(normalise_domain(domain), client_id, secret)


def admit(
    tx: Tx,
    cipher: Cipher,
    tenant_id: str,
    app_id: str,
    user_name: str,
    record: Callable[[Tx], None] | None = None,
) -> None:
    """The member must pass the whole rule (`eligibility.RULE`), under the locks that keep it
    true until the session is committed; a member with no authorisation for the app is
    `member_unknown`, once the tenant and the app are found sound (`tenant_client`).

    `record` is the sign-in's own write to the member's row (`Sessions.open`). It runs after
    the tenant's lock and before the row is locked shared: concurrent logins of one member that
    each locked the row shared and then updated it would deadlock, while an update first makes
    the others wait for this commit (and then find nothing left to record). A refusal rolls it
    back with the rest."""
    bindings.lock_tenant_in(tx, tenant_id, shared=True)
    if record is not None:
        record(tx)
    params = {"tenant_id": tenant_id, "app_id": app_id, "user_name": user_name}
    row = tx.one(_ADMISSION, params)
    detail = f"tenant {tenant_id!r} app {app_id!r} user {user_name!r}"
    if row is None:
        client_row = tx.one(_CLIENT, {"tenant_id": tenant_id, "app_id": app_id})
        _client(client_row, cipher, tenant_id, app_id)  # names the tenant's problem
        raise Refusal("member_unknown", detail)
    _refuse(eligibility.refusal(eligibility.RULE, row), detail)


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


def admitted_as(tx: Tx, cipher: Cipher, tenant_id: str, app_id: str, user_name: str) -> str:
    """`admit`, then the member's sign-in name, `userName@tenantCode`."""
    admit(tx, cipher, tenant_id, app_id, user_name)
    return f"{user_name}@{tx.one(_TENANT_CODE, {'tenant_id': tenant_id}).tenant_code}"


_TENANT_CODE = select(Tenant.tenant_code).where(Tenant.tenant_id == bindparam("tenant_id"))


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


@dataclass(frozen=True)
class Profile:
    """What the signed-in page shows beyond the session: names, and whether the member is an
    admin of their tenant (`eligibility.admin_of`, the console's own test)."""

    tenant_name: str
    department: str | None
    admin: bool

    @property
    def role(self) -> str:
        return eligibility.ADMIN_ROLE if self.admin else "user"


async def profile(conn: AsyncConnection, tenant_id: str, user_name: str, org_code: str) -> Profile:
    """The enterprise's name and the department's (None when no department has the code)."""
    department = (Department.tenant_id == Tenant.tenant_id) & (Department.org_code == org_code)
    admin = eligibility.admin_of(tenant_id, user_name)
    row = (
        await conn.execute(
            select(Tenant.name, Tenant.tenant_code, Department.name, admin)
            .outerjoin(Department, department)
            .where(Tenant.tenant_id == tenant_id)
        )
    ).one()
    return Profile(row[0] or row[1], row[2], bool(row[3]))
