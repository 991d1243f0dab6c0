"""scim2-server's storage over the mirrored directory, for one client's view of one tenant,
read only: scim2-server speaks the protocol (routing, parameters, ETags, errors) and asks this
for resources by id and for pages of them.

Who sees a tenant (`view_of`): a client of an app sees the tenants holding a live instance of
that app, the tenant and app half of the eligibility rule (`eligibility.TENANT_AND_APP`); every
other tenant, whether it exists or not, is the same 404.

Cost. A GET by id reads one row by its primary key (and, for a Group, its first members). A page
is chosen on keys alone (the authorisations' or departments' primary key, in key order, with the
filter's conditions), and only its rows are then read whole: the eligibility rule's per-row work
is done for the page, never for the tenant. `startIndex` pages skip rows with OFFSET, from
whichever end is nearer; cursors (RFC 9865) start after the previous page's last key. The count
behind `totalResults` is most of a page's cost past a few thousand Users: a page reached by a
cursor leaves it out (RFC 9865 §2 lets it), so those cost the same from the first to the last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scim2_models import (
    InvalidCursorException,
    InvalidFilterException,
    NotFoundException,
    NotImplementedException,
    Path,
    Resource,
    ResourceType,
    ResponseParameters,
    SearchRequest,
)
from scim2_models.path import CompareOperator
from scim2_server.storage import AsyncScimStorage, SearchPage
from scim2_server.utils import parametrize
from sqlalchemy import ColumnElement, Select, exists, false, func, literal, not_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.util import find_tables

from identity.db import Database
from identity.directory import eligibility
from identity.models import (
    ACTIVE,
    DELETED,
    AppCredential,
    Authorisation,
    Department,
    Member,
    Tenant,
)
from identity.scim import filters, resources
from identity.scim.filters import Attribute, Kind
from identity.scim.resources import (
    GROUP_SCHEMA,
    MEMBERS_CAP,
    GroupResource,
    Members,
    Tenancy,
    key_of,
)

if TYPE_CHECKING:
    from identity.provider.tokens import Subjects

READ_ONLY = "identity's directory is read only: it changes through the marketplace"


@dataclass(frozen=True)
class View:
    """What one client sees: one tenant, through its app."""

    tenancy: Tenancy
    app_id: str
    subjects: Subjects


async def view_of(
    conn: AsyncConnection, base_url: str, subjects: Subjects, tenant_id: str, app_id: str
) -> View | None:
    """The tenant as a client of `app_id` sees it, while the tenant holds a live instance of
    the app (active and open, the app's credential active and live); else None."""
    code = await conn.scalar(
        select(Tenant.tenant_code)
        .join(
            AppCredential,
            (AppCredential.tenant_id == Tenant.tenant_id) & (AppCredential.app_id == app_id),
        )
        .where(Tenant.tenant_id == tenant_id, *eligibility.flags(eligibility.TENANT_AND_APP))
    )
    if code is None:
        return None
    return View(
        Tenancy(tenant_id, code, resources.scim_base(base_url, tenant_id)), app_id, subjects
    )


@dataclass(frozen=True)
class _Kind:
    """A resource type's rows: the keys a page is chosen on, and the rows read for a page."""

    key: Any
    keys: Select[Any]
    rows: Select[Any]


class DirectoryStorage(AsyncScimStorage):
    """One request's storage: `view` is who asks about what."""

    supports_cursors = True

    def __init__(self, db: Database, view: View) -> None:
        self.db = db
        self.view = view

    async def get(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        response_parameters: ResponseParameters[Any] | None = None,
    ) -> Resource[Any]:
        key = key_of(resource_id)
        kind = self._kind(resource_type)
        async with self.db.read() as session:
            conn = await session.connection()
            row = None
            if key is not None:
                row = (await conn.execute(kind.rows.where(kind.key == key))).one_or_none()
            if row is None:
                raise NotFoundException(detail=f"{resource_type.name} {resource_id!r} not found")
            found = await self._render(conn, resource_type, [row], response_parameters)
        return found[0]

    async def search(
        self,
        resource_types: list[ResourceType],
        search_request: SearchRequest[Any],
        *,
        position: Any = None,
    ) -> SearchPage:
        if len(resource_types) != 1:
            raise NotImplementedException(detail="search /Users or /Groups, one at a time")
        resource_type = resource_types[0]
        kind = self._kind(resource_type)
        keys = kind.keys
        if search_request.filter is not None:
            keys = self._filtered(resource_type, keys, search_request)
        count = search_request.count
        async with self.db.read() as session:
            conn = await session.connection()
            total = None
            if search_request.cursor is None or position is None:
                total = await conn.scalar(select(func.count()).select_from(keys.subquery()))
            if count == 0:
                return SearchPage(total, [])
            if search_request.cursor is None:
                start, total = search_request.start_index_0 or 0, total or 0
                found = await _by_index(conn, kind.key, keys, start, count, total)
                page = SearchPage(total, [])
            else:
                found, page = await _by_cursor(conn, kind.key, keys, count, position, total)
            rows = await _rows(conn, kind, found)
            page.resources = await self._render(conn, resource_type, rows, search_request)
        return page

    def _kind(self, resource_type: ResourceType) -> _Kind:
        tenant_id = self.view.tenancy.tenant_id
        if resource_type.name == "User":
            keys = (
                select(Authorisation.user_name)
                .join(
                    Member,
                    (Member.tenant_id == Authorisation.tenant_id)
                    & (Member.user_name == Authorisation.user_name),
                )
                .where(
                    Authorisation.tenant_id == tenant_id,
                    Authorisation.app_id == self.view.app_id,
                    Member.state != DELETED,
                )
            )
            rows = resources.users(tenant_id, self.view.app_id)
            return _Kind(Authorisation.user_name, keys, rows)
        keys = select(Department.org_code).where(
            Department.tenant_id == tenant_id, Department.state == ACTIVE
        )
        return _Kind(Department.org_code, keys, resources.groups(tenant_id))

    def _filtered(
        self, resource_type: ResourceType, keys: Select[Any], search_request: SearchRequest[Any]
    ) -> Select[Any]:
        assert search_request.filter is not None
        if resource_type.name == "User":
            attributes = filters.user_attributes(self.view.tenancy)
        else:
            attributes = group_attributes(self.view.app_id)
        condition = filters.translate(search_request.filter, attributes)
        if resource_type.name == "User" and _reads_departments(condition):
            keys = keys.outerjoin(
                Department,
                (Department.tenant_id == Member.tenant_id)
                & (Department.org_code == Member.org_code),
            )
        return keys.where(condition)

    async def _render(
        self,
        conn: AsyncConnection,
        resource_type: ResourceType,
        rows: Sequence[Any],
        response_parameters: ResponseParameters[Any] | None,
    ) -> list[Resource[Any]]:
        tenancy = self.view.tenancy
        if resource_type.name == "User":
            return [resources.user_resource(row, tenancy, self.view.subjects) for row in rows]
        loaded = _keeps_members(response_parameters)
        members: dict[str, Members] = {}
        if loaded:
            codes = [row.org_code for row in rows]
            members = await members_of(conn, tenancy.tenant_id, self.view.app_id, codes)
        return [
            resources.group_resource(row, tenancy, members[row.org_code] if loaded else None)
            for row in rows
        ]

    async def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        raise NotImplementedException(detail=READ_ONLY)

    async def update(
        self,
        resource_type: ResourceType,
        resource: Resource[Any],
        *,
        expected_version: str | None = None,
    ) -> Resource[Any]:
        raise NotImplementedException(detail=READ_ONLY)

    async def delete(
        self, resource_type: ResourceType, resource_id: str, *, expected_version: str | None = None
    ) -> None:
        raise NotImplementedException(detail=READ_ONLY)


def _reads_departments(condition: ColumnElement[bool]) -> bool:
    """Whether `condition` reads the member's department (`groups`, `department`)."""
    return Department.__table__ in find_tables(condition, check_columns=True)


def _keeps_members(parameters: ResponseParameters[Any] | None) -> bool:
    """Whether a response with these parameters shows `members` (RFC 7644 §3.9)."""
    if parameters is None:
        return True
    paths = parametrize(Path, GroupResource).iter_paths(
        include_subattributes=False,
        attributes=parameters.attributes,
        excluded_attributes=parameters.excluded_attributes,
    )
    return any(str(path) == "members" for path in paths)


async def _rows(conn: AsyncConnection, kind: _Kind, keys: list[str]) -> list[Any]:
    """The page's rows, in the order of its keys."""
    if not keys:
        return []
    found = {row[0]: row for row in await conn.execute(kind.rows.where(kind.key.in_(keys)))}
    return [found[key] for key in keys if key in found]


async def _by_index(
    conn: AsyncConnection, key: Any, keys: Select[Any], start: int, count: int | None, total: int
) -> list[str]:
    """The keys from the 0-based `start`, read from whichever end of the order is nearer:
    OFFSET costs the rows it skips, so the last page costs what the first does, and only the
    middle pays for half the tenant."""
    stop = total if count is None else min(start + count, total)
    if start >= stop:
        return []
    if total - stop < start:
        backwards = keys.order_by(key.desc()).offset(total - stop).limit(stop - start)
        return list(reversed((await conn.scalars(backwards)).all()))
    return list((await conn.scalars(keys.order_by(key).offset(start).limit(stop - start))).all())


async def _by_cursor(
    conn: AsyncConnection,
    key: Any,
    keys: Select[Any],
    count: int | None,
    position: Any,
    total: int | None,
) -> tuple[list[str], SearchPage]:
    """A page after (or before) the key a cursor holds (RFC 9865), with the positions of the
    pages beside it: `{"after": key}` or `{"before": key}`."""
    limit = 100 if count is None else count  # the service always gives one
    after, before = _position(position)
    if before is None:
        chosen = keys.order_by(key)
        if after is not None:
            chosen = chosen.where(key > after)
        found = list((await conn.scalars(chosen.limit(limit + 1))).all())
        more_after, found = len(found) > limit, found[:limit]
        more_before = after is not None and await _any(conn, keys.where(key <= after))
    else:
        chosen = keys.where(key < before).order_by(key.desc()).limit(limit + 1)
        found = list((await conn.scalars(chosen)).all())
        more_before, found = len(found) > limit, found[:limit][::-1]
        more_after = await _any(conn, keys.where(key >= before))
    page = SearchPage(total, [])
    if found and more_after:
        page.next = {"after": found[-1]}
    if found and more_before:
        page.previous = {"before": found[0]}
    return found, page


def _position(position: Any) -> tuple[str | None, str | None]:
    if position is None:
        return None, None
    if isinstance(position, dict) and len(position) == 1:
        ((name, value),) = position.items()
        if name in ("after", "before") and isinstance(value, str):
            return (value, None) if name == "after" else (None, value)
    raise InvalidCursorException


async def _any(conn: AsyncConnection, keys: Select[Any]) -> bool:
    return (await conn.scalar(keys.limit(1))) is not None


def _in_department(app_id: str, tenant_id: Any, org_code: Any) -> list[ColumnElement[bool]]:
    """Who of a department a client of `app_id` sees: its members authorised for the app (in
    whatever state), not deleted."""
    return [
        Member.tenant_id == tenant_id,
        Member.org_code == org_code,
        Member.state != DELETED,
        Authorisation.tenant_id == Member.tenant_id,
        Authorisation.app_id == app_id,
        Authorisation.user_name == Member.user_name,
    ]


async def members_of(
    conn: AsyncConnection, tenant_id: str, app_id: str, org_codes: Sequence[str]
) -> dict[str, Members]:
    """The first `MEMBERS_CAP` Users (by user name) of each department, and whether it has
    more: each read along the members' department index, at most `MEMBERS_CAP + 1` rows."""
    found: dict[str, Members] = {}
    for code in org_codes:
        rows = await conn.execute(
            select(Member.user_name, Member.name)
            .where(*_in_department(app_id, tenant_id, code))
            .order_by(Member.user_name)
            .limit(MEMBERS_CAP + 1)
        )
        listed = [(row.user_name, row.name) for row in rows]
        found[code] = (listed[:MEMBERS_CAP], len(listed) > MEMBERS_CAP)
    return found


def group_attributes(app_id: str) -> dict[str, Attribute]:
    """What each Group attribute reads as over `resources.groups` (keys: folded URNs)."""
    visible = exists().where(*_in_department(app_id, Department.tenant_id, Department.org_code))

    def member(op: CompareOperator, value: Any, _exact: bool) -> ColumnElement[bool]:
        key = key_of(value) if isinstance(value, str) else None
        if op not in (CompareOperator.eq, CompareOperator.ne):
            raise InvalidFilterException(detail="members.value compares with eq and ne only")
        equal = false() if key is None else visible.where(Member.user_name == key)
        return equal if op == CompareOperator.eq else not_(equal)

    parent = filters.text(Department.parent_code)
    core = {
        "id": Attribute(Department.org_code, Kind.KEY),
        "displayname": Attribute(filters.text(Department.name)),
        "members": Attribute(present=visible),
        "members.value": Attribute(compare=member),
        "members.display": Attribute(refused="compare members.value instead"),
        "members.type": Attribute(refused="every member is a User"),
        "members.$ref": Attribute(refused="compare members.value instead"),
        "meta": Attribute(present=true()),
        "meta.resourcetype": Attribute(literal("Group")),
        "meta.created": Attribute(Department.created_at, Kind.TIME),
        "meta.lastmodified": Attribute(
            filters.greatest(Department.created_at, Department.updated_at), Kind.TIME
        ),
        "meta.location": Attribute(refused="compare id instead"),
        "meta.version": Attribute(refused=filters.NOT_STORED),
        "schemas": Attribute(refused="every Group has the same"),
    }
    extension = {
        "orgcode": Attribute(filters.text(Department.org_code)),
        "parent": Attribute(present=parent.is_not(None)),
        "parent.value": Attribute(parent, Kind.KEY),
        "parent.$ref": Attribute(refused="compare parent.value instead"),
        "memberstruncated": Attribute(refused=filters.NOT_STORED),
    }
    return {
        **{filters.CORE_GROUP + key: value for key, value in core.items()},
        **{f"{GROUP_SCHEMA}:{key}".casefold(): value for key, value in extension.items()},
    }
