"""What a tenant admin reads: the member list (keyset pages, a bounded count), the department
tree and the marketplace calls that touched the tenant. One member, with their apps and
sessions, and ending those sessions are in `identity.admin.member_detail`.

Every statement names the admin's own tenant: the tenant comes from the admin's session, never
from the request, so no id a request sends can reach another tenant. Functions take the caller's
session and never commit.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Select,
    Subquery,
    and_,
    case,
    exists,
    false,
    func,
    select,
    union,
)
from sqlalchemy.ext.asyncio import AsyncSession

from identity.admin.errors import BadRequest
from identity.admin.inputs import refuse_control_characters
from identity.directory import eligibility
from identity.models import (
    ACTIVE,
    Authorisation,
    Department,
    MarketplaceCall,
    Member,
)

MemberState = Literal["enabled", "disabled", "cancelled", "deleted"]
STATES: tuple[MemberState, ...] = ("enabled", "disabled", "cancelled", "deleted")
MAX_LIMIT = 200
DEFAULT_LIMIT = 50
COUNT_EXACT_UP_TO = 10_000
"""The member list counts its matches exactly up to this many and says "more than" past it:
a count reads at most this many index entries (plus one), however large the tenant."""
Span = Callable[[Any], ColumnElement[bool]]
"""A condition on a `userName` column: which part of the list (after a cursor, up to it)."""
_CALL_ID = re.compile(r"[1-9][0-9]{0,17}")
"""A marketplace call's id in a cursor: ASCII digits, within a 64-bit column."""


# --- the member list --------------------------------------------------------------------------


def _state() -> tuple[ColumnElement[str], dict[str, ColumnElement[bool]]]:
    """A member's state as the console shows it, and a filter for each state, over a query
    holding the member's row: deleted (authSync flag 0), authorisation cancelled (flag 3 for
    every app), disabled (`enable:"false"` wherever authorised), else enabled. Each is a member
    condition of the eligibility rule."""
    of_member = (Authorisation.tenant_id == Member.tenant_id) & (
        Authorisation.user_name == Member.user_name
    )
    live = eligibility.MEMBER_ACTIVE.sql
    authorised = exists().where(of_member, eligibility.AUTHORISED.sql)
    enabled = exists().where(of_member, eligibility.AUTHORISED.sql, eligibility.ENABLED.sql)
    state = case(
        (~live, "deleted"), (~authorised, "cancelled"), (~enabled, "disabled"), else_="enabled"
    )
    filters = {
        "deleted": ~live,
        "cancelled": live & ~authorised,
        "disabled": live & authorised & ~enabled,
        "enabled": live & enabled,
    }
    return state, filters


_STATE, _STATE_FILTERS = _state()


@dataclass(frozen=True)
class MemberRow:
    user_name: str
    name: str
    org_code: str
    role: str
    state: str
    last_login_at: datetime | None

    @property
    def enabled(self) -> bool:
        return self.state == "enabled"


@dataclass(frozen=True)
class MemberPage:
    items: list[MemberRow]
    next_cursor: str | None


@dataclass(frozen=True)
class MemberQuery:
    q: str = ""
    org_code: str = ""
    state: str = ""
    limit: int = DEFAULT_LIMIT
    cursor: str = ""
    after: str = field(init=False, default="")

    def __post_init__(self) -> None:
        if self.state and self.state not in STATES:
            raise BadRequest(f"state must be one of {', '.join(STATES)}")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise BadRequest(f"limit must be 1 to {MAX_LIMIT}")
        object.__setattr__(self, "after", decode_cursor(self.cursor) if self.cursor else "")


def encode_cursor(user_name: str) -> str:
    return base64.urlsafe_b64encode(user_name.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """What `encode_cursor` encoded; anything else (a NUL inside, say) is a 400."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
        refuse_control_characters(decoded)
    except (binascii.Error, UnicodeDecodeError, ValueError, BadRequest):
        raise BadRequest("cursor is not one this API gave") from None
    return decoded


def _prefix(column: Any, prefix: str, dialect: str) -> ColumnElement[bool]:
    """`column` starts with `prefix`, as an index range (a LIKE could not use the index on
    PostgreSQL's usual collations). On PostgreSQL the comparison is in the "C" collation, the
    one the admin indexes are built in, where strings sharing a prefix sort together."""
    if dialect == "postgresql":
        column = column.collate("C")
    return and_(column >= prefix, column < prefix + "\U0010ffff")


def listing(*where: ColumnElement[bool], limit: int, among: Subquery | None = None) -> Select[Any]:
    """Members matching `where` (and named in `among`, when given), in `userName` order, with
    their role (`admin` for an admin of the tenant, `eligibility.admin_of`) and state. The page
    is chosen first and the role and state computed for its rows only: computed over the whole
    query, PostgreSQL plans them as one scan of every authorisation (it costs them for every
    member and ignores the limit), so a page of a large tenant would cost its size."""
    chosen = select(Member.tenant_id, Member.user_name)
    if among is not None:  # few candidates, in userName order: read until the page is full
        chosen = chosen.join(among, Member.user_name == among.c.user_name)
    page = chosen.where(*where).order_by(Member.user_name).limit(limit).subquery("page")
    key = (page.c.tenant_id, page.c.user_name)
    role = case((eligibility.admin_of(*key), eligibility.ADMIN_ROLE), else_="user")
    columns = (Member.user_name, Member.name, Member.org_code, role, _STATE, Member.last_login_at)
    return (
        select(*columns)
        .select_from(page)
        .join(Member, (Member.tenant_id == key[0]) & (Member.user_name == key[1]))
        .order_by(Member.user_name)
    )


def _not_enabled(
    tenant_id: str, span: Span | None, dialect: str, where: list[ColumnElement[bool]]
) -> Subquery | None:
    """Where the `disabled` filter starts: the tenant's members in `span` (a condition on a
    `userName` column) with an active authorisation that is not enabled. Every disabled member
    is one of them, and they are few (`ix_authorisations_not_enabled` holds them alone, in
    `userName` order), so the filter reads them instead of the whole tenant. PostgreSQL walks
    them in order as a joined subquery (returned) and stops when the page is full; SQLite
    would first collect them either way, so it takes them as an `IN` list (added to `where`)."""
    candidates = select(Authorisation.user_name).where(
        Authorisation.tenant_id == tenant_id,
        Authorisation.enabled == false(),
        Authorisation.state == ACTIVE,
        span(Authorisation.user_name) if span else Authorisation.user_name > "",
    )
    if dialect == "postgresql":
        return candidates.distinct().subquery("not_enabled")
    where.append(Member.user_name.in_(candidates))
    return None


def _matching(
    tenant_id: str, query: MemberQuery, dialect: str, span: Span | None = None
) -> tuple[list[ColumnElement[bool]], Subquery | None]:
    """The member list's conditions for `query` (search, department, state), over the members
    whose `userName` is in `span` (all of them when None), and the few candidates to walk
    instead of the tenant, when the state filter has some."""
    where = [Member.tenant_id == tenant_id]
    if span:
        where.append(span(Member.user_name))
    if query.org_code:
        where.append(Member.org_code == query.org_code)
    if query.state:
        where.append(_STATE_FILTERS[query.state])
    among = None
    if query.state == "disabled":
        among = _not_enabled(tenant_id, span, dialect, where)
    if query.q:
        by_account = select(Member.user_name).where(
            Member.tenant_id == tenant_id, _prefix(Member.user_name, query.q, dialect)
        )
        by_name = select(Member.user_name).where(
            Member.tenant_id == tenant_id, _prefix(Member.name, query.q, dialect)
        )
        where.append(Member.user_name.in_(union(by_account, by_name)))
    return where, among


async def members(db: AsyncSession, tenant_id: str, query: MemberQuery) -> MemberPage:
    """One page of the tenant's members in `userName` order. Keyset pagination: the cursor is
    the last `userName` seen, so every page is an index range of the same cost, however deep.
    `q` is a prefix of the `userName` or the name."""
    after = query.after
    span: Span | None = (lambda column: column > after) if after else None
    where, among = _matching(tenant_id, query, db.get_bind().dialect.name, span)
    statement = listing(*where, limit=query.limit + 1, among=among)
    rows = [MemberRow(*row) for row in (await db.execute(statement)).all()]
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return MemberPage(rows, encode_cursor(rows[-1].user_name) if more and rows else None)


@dataclass(frozen=True)
class Count:
    """How many match: exactly `n`; or, when not `exact`, more than `n` (the threshold); or,
    when `n` is None, not counted (a state filter over more members than the threshold)."""

    n: int | None
    exact: bool


async def _bounded_count(
    db: AsyncSession, tenant_id: str, query: MemberQuery, span: Span | None
) -> Count:
    """How many members `query` matches in `span`, reading at most `COUNT_EXACT_UP_TO` + 1 of
    them: `SELECT count(*) FROM (SELECT … LIMIT threshold + 1)`. A state (other than disabled,
    which starts from its few candidates) is a check per member, so it is checked on the first
    threshold + 1 members the search and department select, not walked until enough match:
    counting the few cancelled members of a large tenant would read all of it."""
    dialect = db.get_bind().dialect.name
    if query.state in ("", "disabled"):
        where, among = _matching(tenant_id, query, dialect, span)
        chosen = select(Member.user_name)
        if among is not None:
            chosen = chosen.join(among, Member.user_name == among.c.user_name)
        bounded = chosen.where(*where).limit(COUNT_EXACT_UP_TO + 1).subquery("bounded")
        n = await db.scalar(select(func.count()).select_from(bounded)) or 0
        return Count(n, True) if n <= COUNT_EXACT_UP_TO else Count(COUNT_EXACT_UP_TO, False)
    where, _ = _matching(tenant_id, replace(query, state=""), dialect, span)
    candidates = (
        select(Member.tenant_id, Member.user_name)
        .where(*where)
        .order_by(Member.user_name)
        .limit(COUNT_EXACT_UP_TO + 1)
        .subquery("candidates")
    )
    statement = (
        select(func.count(), func.count().filter(_STATE_FILTERS[query.state]))
        .select_from(candidates)
        .join(
            Member,
            (Member.tenant_id == candidates.c.tenant_id)
            & (Member.user_name == candidates.c.user_name),
        )
    )
    seen, n = (await db.execute(statement)).one()
    if seen <= COUNT_EXACT_UP_TO:
        return Count(n, True)
    return Count(COUNT_EXACT_UP_TO, False) if n > COUNT_EXACT_UP_TO else Count(None, False)


@dataclass(frozen=True)
class MemberSummary:
    """Where a page of the member list stands: how many matches come before it (`before`, on
    earlier pages), how many it shows, and how many match in all (`total`)."""

    before: Count
    shown: int
    total: Count

    @property
    def first(self) -> int | None:
        """The page's first row's place (1-based), when known."""
        return None if self.before.n is None or not self.before.exact else self.before.n + 1

    @property
    def last(self) -> int | None:
        first = self.first
        return None if first is None else first + self.shown - 1


async def member_summary(
    db: AsyncSession, tenant_id: str, query: MemberQuery, page: MemberPage
) -> MemberSummary:
    """The place of `page` in the list `query` asks for, and the list's length: two bounded
    counts (`_bounded_count`), the matches up to the cursor and all of them; the first page
    needs only the second. Neither reads more than the threshold's rows, however large the
    tenant, so deep pages keep their keyset cost."""
    total = await _bounded_count(db, tenant_id, query, None)
    before = Count(0, True)
    if query.after:
        after = query.after
        earlier: Span = lambda column: column <= after  # noqa: E731 - the earlier pages' rows
        before = await _bounded_count(db, tenant_id, query, earlier)
    return MemberSummary(before, len(page.items), total)


# --- departments and syncs --------------------------------------------------------------------


@dataclass
class DepartmentNode:
    org_code: str
    name: str
    children: list[DepartmentNode] = field(default_factory=list)
    members: int = 0


async def departments(db: AsyncSession, tenant_id: str) -> list[DepartmentNode]:
    """The tenant's live departments as a tree (roots first, children by name), each with how
    many live members it holds directly. A department whose parent is unknown is a root."""
    counts = (
        select(Member.org_code, func.count().label("n"))
        .where(Member.tenant_id == tenant_id, Member.state == ACTIVE)
        .group_by(Member.org_code)
        .subquery()
    )
    rows = (
        await db.execute(
            select(Department.org_code, Department.name, Department.parent_code, counts.c.n)
            .outerjoin(counts, counts.c.org_code == Department.org_code)
            .where(Department.tenant_id == tenant_id, Department.state == ACTIVE)
            .order_by(Department.name, Department.org_code)
        )
    ).all()
    nodes = {code: DepartmentNode(code, name, members=n or 0) for code, name, _, n in rows}
    roots: list[DepartmentNode] = []
    for code, _, parent, _ in rows:
        siblings = nodes[parent].children if parent in nodes and parent != code else roots
        siblings.append(nodes[code])
    return roots


@dataclass(frozen=True)
class SyncRow:
    id: int
    interface: str
    result_code: str
    result_msg: str
    received_at: datetime
    test: bool
    instance_id: str | None
    latency_ms: float
    changes: dict[str, Any] | None  # as its handler recorded it; None before revision 0013


SYNC_COLUMNS = (
    MarketplaceCall.id,
    MarketplaceCall.interface,
    MarketplaceCall.result_code,
    MarketplaceCall.result_msg,
    MarketplaceCall.received_at,
    MarketplaceCall.test,
    MarketplaceCall.instance_id,
    MarketplaceCall.latency_ms,
    MarketplaceCall.changes,
)
"""A `SyncRow`'s columns, in its order."""


async def syncs(
    db: AsyncSession, tenant_id: str, limit: int, cursor: str
) -> tuple[list[SyncRow], str | None]:
    """The marketplace calls that named the tenant, newest first (interface, result, time;
    never payloads), in keyset pages by id."""
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be 1 to {MAX_LIMIT}")
    where = [MarketplaceCall.tenant_id == tenant_id]
    if cursor:
        before = decode_cursor(cursor)
        if not _CALL_ID.fullmatch(before):  # not `isdigit()`: it takes "²", which int() refuses
            raise BadRequest("cursor is not one this API gave")
        where.append(MarketplaceCall.id < int(before))
    rows = (
        await db.execute(
            select(*SYNC_COLUMNS).where(*where).order_by(MarketplaceCall.id.desc()).limit(limit + 1)
        )
    ).all()
    items = [SyncRow(*row) for row in rows[:limit]]
    more = len(rows) > limit
    return items, encode_cursor(str(items[-1].id)) if more else None
