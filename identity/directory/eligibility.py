"""Who may use an app, and who administers a tenant: one rule, as SQL and as a check.

A member may use an app while the tenant is active and open for sign-in (a live instance, or
the seller's own test tenant), the app's credential is active, the member is active with an
active, enabled authorisation for the app, and the instances the credential and the
authorisation came with are live. Each condition names the refusal a login gets when it fails.

The same conditions serve every reader: a session is loaded only while they hold
(`MAY_USE_APP`), a login's admission statements select each one as a flag and name the first
that failed (`refusal`), the local sign-in and the provider ask which apps a member may use
(`usable_apps`), and a member is an admin of their tenant while an app they may use is
authorised with `role=admin` (`admin_of`). Every check reads them afresh: losing the role or
the access ends the rights at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from identity.directory import bindings
from identity.models import ACTIVE, AppCredential, Authorisation, Member, Tenant

Executor = AsyncSession | AsyncConnection
ADMIN_ROLE = "admin"
NOT_LIVE = "the app's instance is not live"


@dataclass(frozen=True, eq=False)
class Condition:
    """One thing a member needs to use an app: `sql` over a query joining the tenant, the app's
    credential, the member and their authorisation for the app; `refusal`, the code a login is
    refused with when it does not hold, and `detail`, what the log says beyond the names."""

    refusal: str
    sql: ColumnElement[bool]
    detail: str = ""


TENANT_ACTIVE = Condition("tenant_deleted", Tenant.state == ACTIVE)
TENANT_OPEN = Condition("instance_inactive", bindings.open_for_sign_in())
APP_ACTIVE = Condition("app_not_configured", AppCredential.state == ACTIVE)
APP_LIVE = Condition(
    "instance_inactive",
    bindings.instance_live(AppCredential.tenant_id, AppCredential.instance_id),
    NOT_LIVE,
)
MEMBER_ACTIVE = Condition("member_deleted", Member.state == ACTIVE)
AUTHORISED = Condition("authorisation_cancelled", Authorisation.state == ACTIVE)
ENABLED = Condition("member_disabled", Authorisation.enabled.is_(True))
AUTHORISATION_LIVE = Condition(
    "instance_inactive",
    bindings.instance_live(Authorisation.tenant_id, Authorisation.instance_id),
    NOT_LIVE,
)

RULE = (
    TENANT_ACTIVE,
    TENANT_OPEN,
    APP_ACTIVE,
    MEMBER_ACTIVE,
    AUTHORISED,
    ENABLED,
    APP_LIVE,
    AUTHORISATION_LIVE,
)
"""Every condition, in the order a refusal names them: the tenant, the app's credential, the
member, and last whether the subscription to this app (the instances the credential and the
authorisation came with) is still live."""
TENANT_AND_APP = (TENANT_ACTIVE, TENANT_OPEN, APP_ACTIVE, APP_LIVE)
"""What the tenant and the app need, whoever signs in: over the tenant and the credential."""
MEMBER = (MEMBER_ACTIVE, AUTHORISED, ENABLED, AUTHORISATION_LIVE)
"""What the member needs besides: over the member and their authorisation for the app."""
MAY_USE_APP = tuple(condition.sql for condition in RULE)
"""The rule as a WHERE clause, for a query joining the four tables."""


def flags(conditions: Iterable[Condition]) -> list[ColumnElement[bool]]:
    """The conditions as columns to select, one boolean each, for `refusal`."""
    return [condition.sql for condition in conditions]


def refusal(conditions: Sequence[Condition], row: Sequence[object]) -> Condition | None:
    """The first of `conditions` that fails, given their `flags` as read in `row` (a NULL, from
    an outer join that found nothing, fails too); None when all hold."""
    return next((c for c, held in zip(conditions, row, strict=True) if not held), None)


_USABLE = (
    select(Authorisation.app_id)
    .join(Tenant, Tenant.tenant_id == Authorisation.tenant_id)
    .join(
        Member,
        (Member.tenant_id == Authorisation.tenant_id)
        & (Member.user_name == Authorisation.user_name),
    )
    .join(
        AppCredential,
        (AppCredential.tenant_id == Authorisation.tenant_id)
        & (AppCredential.app_id == Authorisation.app_id),
    )
    .where(*MAY_USE_APP)
)

Key = str | ColumnElement[str]


def _usable(tenant_id: Key, user_name: Key) -> Select[str]:
    return _USABLE.where(Authorisation.tenant_id == tenant_id, Authorisation.user_name == user_name)


async def usable_apps(db: Executor, tenant_id: str, user_name: str) -> list[str]:
    """The apps the member may use now, sorted; empty when none. Sorted here, not in SQL: asked
    for them in `app_id` order, SQLite walks the tenant's whole authorisations key for it (8 ms
    in a tenant of 100,000 members) instead of the member's own index."""
    return sorted(await db.scalars(_usable(tenant_id, user_name)))


def admin_of(tenant_id: Key, user_name: Key) -> ColumnElement[bool]:
    """SQL: the member is an admin of their tenant, an app they may use authorising them with
    `role=admin`. The key may be columns of the enclosing query (not of `Member` itself, which
    this condition joins on its own)."""
    return exists(_usable(tenant_id, user_name).where(Authorisation.role == ADMIN_ROLE))


async def is_admin(db: Executor, tenant_id: str, user_name: str) -> bool:
    return bool(await db.scalar(select(admin_of(tenant_id, user_name))))
