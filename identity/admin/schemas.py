"""The JSON of `/api/admin` (in the OpenAPI document): camelCase, times in UTC ISO 8601."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_serializer
from pydantic.alias_generators import to_camel

from identity.admin import member_detail, service


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    @field_serializer("*", when_used="json")
    @classmethod
    def _utc(cls, value: object) -> object:
        if isinstance(value, datetime):
            return value.isoformat(timespec="seconds") + "Z"
        return value


class MemberItem(_Out):
    user_name: str
    name: str
    org_code: str
    role: str
    state: str
    """enabled, disabled, cancelled (authorisation cancelled), deleted."""
    enabled: bool
    last_login_at: datetime | None

    @classmethod
    def of(cls, row: service.MemberRow) -> MemberItem:
        return cls(
            user_name=row.user_name,
            name=row.name,
            org_code=row.org_code,
            role=row.role,
            state=row.state,
            enabled=row.enabled,
            last_login_at=row.last_login_at,
        )


class MemberList(_Out):
    items: list[MemberItem]
    next_cursor: str | None


class AppAccessOut(_Out):
    app_id: str
    role: str
    state: str
    """authorised, disabled, cancelled, deleted."""


class SessionOut(_Out):
    """One session: `appId` is the app signed in to last (of `apps`); `method`, `browser`,
    `platform` and `address` are of its latest sign-in (`signedInAt`), null when not known;
    `current` marks the session making this request."""

    app_id: str
    apps: list[str]
    created_at: datetime
    signed_in_at: datetime
    last_seen_at: datetime
    method: str | None
    """`marketplace` or `password` (a local password)."""
    browser: str | None
    platform: str | None
    address: str | None
    current: bool

    @classmethod
    def of(cls, row: member_detail.SessionRow) -> SessionOut:
        return cls(
            app_id=row.app_id,
            apps=row.apps,
            created_at=row.created_at,
            signed_in_at=row.signed_in_at,
            last_seen_at=row.last_seen_at,
            method=row.method,
            browser=row.browser,
            platform=row.platform,
            address=row.address,
            current=row.current,
        )


class MemberOut(MemberItem):
    department: str | None
    position: str | None
    apps: list[AppAccessOut]
    sessions: list[SessionOut]

    @classmethod
    def of_detail(cls, detail: member_detail.MemberDetail) -> MemberOut:
        item = MemberItem.of(detail.member).model_dump()
        return cls(
            **item,
            department=detail.department,
            position=detail.position,
            apps=[AppAccessOut(app_id=a.app_id, role=a.role, state=a.state) for a in detail.apps],
            sessions=[SessionOut.of(s) for s in detail.sessions],
        )


class SessionsEnded(_Out):
    sessions_ended: int


class DepartmentOut(_Out):
    org_code: str
    name: str
    members: int
    children: list[DepartmentOut]

    @classmethod
    def of(cls, node: service.DepartmentNode) -> DepartmentOut:
        children = [cls.of(child) for child in node.children]
        return cls(org_code=node.org_code, name=node.name, members=node.members, children=children)


class DepartmentTree(_Out):
    items: list[DepartmentOut]


class SyncOut(_Out):
    interface: str
    result_code: str
    result_msg: str
    received_at: datetime
    test: bool


class SyncList(_Out):
    items: list[SyncOut]
    next_cursor: str | None


class ResetStarted(_Out):
    reset_id: str
    code_sent_to: str
    """Where the code went (the acting admin's own mobile, else e-mail), masked."""


class ResetCode(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=16, pattern=r"^[^\x00-\x1f\x7f]*$")
    """As typed; spaces around it are ignored, control characters refused."""


class Problem(_Out):
    error: str
    message: str
