"""One member as the tenant admin sees them (`member`): their profile, their apps and the state
of each, and their sessions told apart by how and from where each was signed in to; and ending
those sessions (`end_member_sessions`).

Every statement names the admin's own tenant (`identity.admin.service` says why); functions take
the caller's session and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from identity.access import Reason, end_access
from identity.admin.errors import MemberNotFound
from identity.admin.service import MemberRow, listing
from identity.directory import eligibility
from identity.models import Authorisation, Department, Member, MemberSession, SessionApp


@dataclass(frozen=True)
class AppAccess:
    app_id: str
    role: str
    state: str
    """authorised (enabled), disabled, cancelled, deleted."""


@dataclass(frozen=True)
class SessionRow:
    """One session of the member: what tells it apart from their others (how, from which
    browser and address its latest sign-in came; None when not known: opened before identity
    kept them), the apps it holds (the latest first), and whether it is the admin's own."""

    apps: list[str]
    created_at: datetime
    signed_in_at: datetime
    last_seen_at: datetime
    method: str | None
    browser: str | None
    platform: str | None
    address: str | None
    current: bool

    @property
    def app_id(self) -> str:
        """The app signed in to last."""
        return self.apps[0]


@dataclass(frozen=True)
class MemberDetail:
    member: MemberRow
    mobile: str | None
    email: str | None
    position: str | None
    department: str | None
    apps: list[AppAccess]
    sessions: list[SessionRow]


async def member(
    db: AsyncSession, tenant_id: str, user_name: str, current: str | None = None
) -> MemberDetail:
    """The member of the admin's tenant, or `not_found` (a member of another tenant is not
    found either: it is not there to see). `current`: the id hash of the admin's own session,
    marked among the member's when it is one of them."""
    mine = (Member.tenant_id == tenant_id, Member.user_name == user_name)
    found = (await db.execute(listing(*mine, limit=1))).one_or_none()
    if found is None:
        raise MemberNotFound()
    row = (
        await db.execute(
            select(Member.mobile, Member.email, Member.position, Department.name)
            .outerjoin(
                Department,
                (Department.tenant_id == Member.tenant_id)
                & (Department.org_code == Member.org_code),
            )
            .where(Member.tenant_id == tenant_id, Member.user_name == user_name)
        )
    ).one()
    app_state = case(
        (~eligibility.AUTHORISED.sql, Authorisation.state),
        (~eligibility.ENABLED.sql, "disabled"),
        else_="authorised",
    )
    apps = sorted(  # here, not in SQL: see `eligibility.usable_apps`
        await db.execute(
            select(Authorisation.app_id, Authorisation.role, app_state).where(
                Authorisation.tenant_id == tenant_id, Authorisation.user_name == user_name
            )
        )
    )
    return MemberDetail(
        MemberRow(*found),
        *row,
        [AppAccess(*app) for app in apps],
        await _sessions(db, tenant_id, user_name, current),
    )


_SESSION_COLUMNS = (
    MemberSession.created_at,
    MemberSession.authenticated_at,
    MemberSession.last_seen_at,
    MemberSession.sign_in_method,
    MemberSession.browser,
    MemberSession.platform,
    MemberSession.address,
)


async def _sessions(
    db: AsyncSession, tenant_id: str, user_name: str, current: str | None
) -> list[SessionRow]:
    """The member's sessions, the latest sign-in first, each with the apps it holds."""
    rows = (
        await db.execute(
            select(MemberSession.sid, MemberSession.id_hash, SessionApp.app_id, *_SESSION_COLUMNS)
            .join(SessionApp, SessionApp.sid == MemberSession.sid)
            .where(MemberSession.tenant_id == tenant_id, MemberSession.user_name == user_name)
            .order_by(
                MemberSession.authenticated_at.desc(),
                MemberSession.sid,
                SessionApp.created_at.desc(),
                SessionApp.app_id,
            )
        )
    ).all()
    sessions: dict[str, SessionRow] = {}
    for sid, id_hash, app_id, created, signed_in, seen, *device in rows:
        if sid in sessions:
            sessions[sid].apps.append(app_id)
        else:
            method, browser, platform, address = device
            sessions[sid] = SessionRow(
                [app_id],
                created,
                signed_in,
                seen,
                method,
                browser,
                platform,
                address,
                current=id_hash == current,
            )
    return list(sessions.values())


async def end_member_sessions(session: AsyncSession, tenant_id: str, user_name: str) -> int:
    """End every session of the member (tokens and back-channel logout follow): admin "end
    sessions". Returns how many ended."""
    known = await session.scalar(
        select(exists().where(Member.tenant_id == tenant_id, Member.user_name == user_name))
    )
    if not known:
        raise MemberNotFound()
    return await end_access(
        session, tenant_id=tenant_id, user_names=[user_name], reason=Reason.ADMIN_ENDED
    )
