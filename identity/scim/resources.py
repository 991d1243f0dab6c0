"""The mirrored directory as SCIM resources (RFC 7643): the models, the ids, and the rows a
client's view of one tenant holds, rendered.

What a client of an app sees of a tenant: as **Users**, the members authorised for its app
(whatever the authorisation's state: a cancelled or disabled one shows as `active: false`) that
are not deleted; as **Groups**, the tenant's active departments. A User's `active` is the member
half of the eligibility rule (`eligibility.MEMBER`): whether the member may sign in to the app
now, the tenant and app half holding or the tenant would not be visible at all.

Ids are the natural keys, base64url without padding (`user_id`, `group_id`): opaque to clients
(RFC 7643 §3.1 lets them hold no meaning), stable, and read back into the primary key, so a GET
by id is one row. `meta.version` is a weak ETag of the resource as rendered without `meta`, so it
changes exactly when what a client reads changes. `meta.lastModified` is the latest `updated_at`
of the rows a User is made of (member, authorisation, department); the syncs touch it on every
write, so it may move without a change, never the other way round.

`users_json` and `groups_json` render resources by key, for the change events.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from pydantic import Field
from scim2_models import (
    URN,
    CaseExact,
    ComplexAttribute,
    Context,
    Email,
    EnterpriseUser,
    Extension,
    Group,
    GroupMember,
    GroupMembership,
    Meta,
    Mutability,
    Name,
    PhoneNumber,
    Reference,
    Resource,
    ResourceType,
    Role,
    User,
)
from scim2_server.utils import parametrize
from sqlalchemy import Row, Select, and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from identity.directory import eligibility
from identity.models import ACTIVE, DELETED, Authorisation, Department, Member, Tenant
from identity.web import holds_control

if TYPE_CHECKING:
    from identity.provider.tokens import Subjects

SCIM_PATH = "/scim/v2"
USER_SCHEMA = "urn:identity:params:scim:schemas:extension:koogallery:2.0:User"
GROUP_SCHEMA = "urn:identity:params:scim:schemas:extension:koogallery:2.0:Group"


class KooGalleryUser(Extension):
    """What the marketplace says of a member beyond RFC 7643's attributes, and the `sub` the
    provider gives the member, so an app can match a SCIM user with a sign-in."""

    __schema__ = URN(USER_SCHEMA)

    org_code: Annotated[str | None, Mutability.read_only, CaseExact.true] = None
    """The marketplace's code of the member's department (`groups` names it when active)."""
    work_place: Annotated[str | None, Mutability.read_only] = None
    entry_date: Annotated[str | None, Mutability.read_only] = None
    """As the marketplace sent it (no fixed format there)."""
    subject: Annotated[str | None, Mutability.read_only, CaseExact.true] = None
    """The member's OpenID Connect `sub` (docs/provider.md)."""


class ParentGroup(ComplexAttribute):
    value: Annotated[str | None, Mutability.read_only, CaseExact.true] = None
    """The parent Group's id."""
    ref: Annotated[Reference[Group] | None, Mutability.read_only] = Field(
        None, serialization_alias="$ref", validation_alias="$ref"
    )
    display: Annotated[str | None, Mutability.read_only] = None


class KooGalleryGroup(Extension):
    """The department tree, and whether `members` was cut at `MEMBERS_CAP`."""

    __schema__ = URN(GROUP_SCHEMA)

    org_code: Annotated[str | None, Mutability.read_only, CaseExact.true] = None
    parent: Annotated[ParentGroup | None, Mutability.read_only] = None
    """The parent department, when the department has one."""
    members_truncated: Annotated[bool | None, Mutability.read_only] = None
    """True when `members` lists only the first `MEMBERS_CAP` members (by user name); the whole
    list is `/Users?filter=groups.value eq "<id>"`."""


UserResource = User[EnterpriseUser | KooGalleryUser]
GroupResource = parametrize(Group, KooGalleryGroup)
MODELS = (User, EnterpriseUser, KooGalleryUser, Group, KooGalleryGroup)
RESOURCE_TYPES = (
    ResourceType.from_resource(UserResource),
    ResourceType.from_resource(GroupResource),
)
MEMBERS_CAP = 200
"""The most members a Group lists. A department of 100,000 members would otherwise make one
response of megabytes, and a page of Groups a hundred of them."""


@dataclass(frozen=True)
class Tenancy:
    """One tenant as its SCIM base shows it."""

    tenant_id: str
    tenant_code: str
    base: str
    """The tenant's SCIM base URL, `{base_url}/scim/v2/{tenant_id}`."""


def scim_base(base_url: str, tenant_id: str) -> str:
    """The tenant's SCIM base URL under identity's base URL (given either way)."""
    base = base_url.rstrip("/")
    tail = f"{SCIM_PATH}/{quote(tenant_id, safe='')}"
    return base if base.endswith(tail) else base + tail


# --- ids ---------------------------------------------------------------------------------------


def user_id(user_name: str) -> str:
    """A member's SCIM id: the user name, base64url without padding."""
    return _encoded(user_name)


def group_id(org_code: str) -> str:
    """A department's SCIM id: the org code, base64url without padding."""
    return _encoded(org_code)


def key_of(resource_id: str) -> str | None:
    """The user name or org code an id stands for; None for anything `user_id` never gives
    (bad characters, padding, another spelling of the same bytes, a control character, a key
    longer than the columns hold), so every row has exactly one id."""
    if not resource_id or len(resource_id) > 100 or "=" in resource_id:
        return None
    try:
        raw = base64.urlsafe_b64decode(resource_id + "=" * (-len(resource_id) % 4))
        key = raw.decode()
    except (binascii.Error, ValueError):
        return None
    if not key or len(key) > 64 or holds_control(key) or _encoded(key) != resource_id:
        return None
    return key


def _encoded(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).rstrip(b"=").decode()


# --- the rows ----------------------------------------------------------------------------------

ACTIVE_USER = and_(*(condition.sql for condition in eligibility.MEMBER)).label("active")
DEPARTMENT_ACTIVE = and_(Department.org_code.is_not(None), Department.state == ACTIVE)

USER_COLUMNS: tuple[Any, ...] = (
    Member.user_name,
    Member.name,
    Member.org_code,
    Member.position,
    Member.employee_code,
    Member.employee_type,
    Member.mobile,
    Member.email,
    Member.work_place,
    Member.entry_date,
    Member.created_at,
    Member.updated_at,
    Authorisation.role,
    Authorisation.updated_at.label("authorised_at"),
    ACTIVE_USER,
    Department.name.label("department"),
    DEPARTMENT_ACTIVE.label("department_active"),
    Department.updated_at.label("department_at"),
)
USERS = (
    select(*USER_COLUMNS)
    .select_from(Authorisation)
    .join(
        Member,
        (Member.tenant_id == Authorisation.tenant_id)
        & (Member.user_name == Authorisation.user_name),
    )
    .outerjoin(
        Department,
        (Department.tenant_id == Member.tenant_id) & (Department.org_code == Member.org_code),
    )
)
"""A User's row: the member, their authorisation for the app and their department."""


def users(tenant_id: str, app_id: str) -> Select[Any]:
    """The Users of an app in a tenant (unordered, unfiltered)."""
    return USERS.where(
        Authorisation.tenant_id == tenant_id,
        Authorisation.app_id == app_id,
        Member.state != DELETED,
    )


GROUP_COLUMNS: tuple[Any, ...] = (
    Department.org_code,
    Department.name,
    Department.parent_code,
    Department.created_at,
    Department.updated_at,
)


def groups(tenant_id: str) -> Select[Any]:
    """The Groups of a tenant: its active departments (unordered, unfiltered)."""
    return select(*GROUP_COLUMNS).where(
        Department.tenant_id == tenant_id, Department.state == ACTIVE
    )


async def tenancy(conn: AsyncConnection, base_url: str, tenant_id: str) -> Tenancy | None:
    """The tenant as SCIM shows it, if it exists (whoever may see it)."""
    code = await conn.scalar(select(Tenant.tenant_code).where(Tenant.tenant_id == tenant_id))
    return None if code is None else Tenancy(tenant_id, code, scim_base(base_url, tenant_id))


# --- rendering ---------------------------------------------------------------------------------


def user_resource(row: Row[Any], tenancy: Tenancy, subjects: Subjects) -> Any:
    """A `UserResource` of a row of `users`, with its meta (location left to the server)."""
    org, name = row.org_code or None, row.name or None
    department = (row.department or None) if row.department_active else None
    user = UserResource(
        id=user_id(row.user_name),
        user_name=f"{row.user_name}@{tenancy.tenant_code}",
        name=Name(formatted=name) if name else None,
        display_name=name,
        title=row.position or None,
        user_type=None if row.employee_type is None else str(row.employee_type),
        active=bool(row.active),
        # As the marketplace sent it: validating would refuse (or rewrite) an odd address.
        emails=[Email.model_construct(value=row.email, primary=True)] if row.email else None,
        phone_numbers=[PhoneNumber(value=row.mobile, type="mobile")] if row.mobile else None,
        roles=[Role(value=row.role, primary=True)] if row.role else None,
        groups=[_membership(tenancy, row.org_code, department)] if row.department_active else None,
    )
    if row.employee_code or department or org:
        user[EnterpriseUser] = EnterpriseUser(
            employee_number=row.employee_code or None, department=department or org
        )
    user[KooGalleryUser] = KooGalleryUser(
        org_code=org,
        work_place=row.work_place or None,
        entry_date=row.entry_date or None,
        subject=subjects.sub(tenancy.tenant_id, row.user_name),
    )
    times = (row.updated_at, row.authorised_at, row.department_at)
    return _versioned(user, "User", row.created_at, max(t for t in times if t is not None))


def _membership(tenancy: Tenancy, org_code: str, name: str | None) -> GroupMembership:
    gid = group_id(org_code)
    return GroupMembership(
        value=gid, ref=f"{tenancy.base}/Groups/{gid}", display=name, type="direct"
    )


Members = tuple[list[tuple[str, str]], bool]
"""A Group's first members (user name, name) by user name, and whether there are more."""


def group_resource(row: Row[Any], tenancy: Tenancy, members: Members | None) -> Any:
    """A `GroupResource` of a row of `groups`; `members` None when they were not loaded (the
    response leaves them out), which the version then covers too."""
    group = GroupResource(id=group_id(row.org_code), display_name=row.name or None)
    truncated = None
    if members is not None:
        listed, truncated = members
        group.members = [
            GroupMember(
                value=user_id(name),
                ref=f"{tenancy.base}/Users/{user_id(name)}",
                type="User",
                display=display,
            )
            for name, display in listed
        ] or None
    parent = None
    if row.parent_code:
        pid = group_id(row.parent_code)
        parent = ParentGroup(value=pid, ref=f"{tenancy.base}/Groups/{pid}")
    group[KooGalleryGroup] = KooGalleryGroup(
        org_code=row.org_code, parent=parent, members_truncated=truncated or None
    )
    return _versioned(group, "Group", row.created_at, row.updated_at)


def _versioned(
    resource: Resource[Any], resource_type: str, created: datetime, modified: datetime
) -> Resource[Any]:
    body = resource.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode()).digest()[:16]
    tag = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    resource.meta = Meta(
        resource_type=resource_type,
        created=created.replace(tzinfo=UTC),
        last_modified=max(created, modified).replace(tzinfo=UTC),
        version=f'W/"{tag}"',
    )
    return resource


def published(resource: Resource[Any], tenancy: Tenancy, endpoint: str) -> dict[str, Any]:
    """The resource's JSON as a GET answers it, its location set."""
    assert resource.meta is not None and resource.id is not None
    resource.meta.location = f"{tenancy.base}/{endpoint}/{resource.id}"
    return resource.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)


# --- by key, for the change events ---------------------------------------------------------------


async def users_json(
    conn: AsyncConnection,
    base_url: str,
    subjects: Subjects,
    tenant_id: str,
    app_id: str,
    user_names: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """The Users of `user_names` as a GET of each answers them to a client of `app_id`
    (`meta.location` under the tenant's SCIM base, below `base_url`), by user name; a name that
    is no User (no authorisation for the app, deleted, unknown) is left out. Whether the
    tenant is visible to the app now is not checked: the caller knows what it sends."""
    names = sorted(set(user_names))
    found = await tenancy(conn, base_url, tenant_id) if names else None
    if found is None:
        return {}
    rows = await conn.execute(users(tenant_id, app_id).where(Member.user_name.in_(names)))
    return {
        row.user_name: published(user_resource(row, found, subjects), found, "Users")
        for row in rows
    }


async def groups_json(
    conn: AsyncConnection, base_url: str, tenant_id: str, org_codes: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The Groups of `org_codes` by org code, without `members` (who is listed depends on the
    app, and a User's `groups` says it the other way round), as a GET with
    `excludedAttributes=members` answers them, version included; an org code that is no active
    department is left out."""
    codes = sorted(set(org_codes))
    found = await tenancy(conn, base_url, tenant_id) if codes else None
    if found is None:
        return {}
    rows = await conn.execute(groups(tenant_id).where(Department.org_code.in_(codes)))
    return {
        row.org_code: published(group_resource(row, found, None), found, "Groups") for row in rows
    }
