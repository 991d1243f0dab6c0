"""What each marketplace call on the syncs page did to the admin's tenant, in words.

The audit row of a call (`MarketplaceCall`) keeps its interface, result and time, never its
payload, so it does not say what the call changed. This reads it from what the call wrote
instead. Every row a call writes is written inside the call's own request, which started
`latency_ms` before the audit row's `received_at` and ended at it; so a row's time that falls in
that span is the call's doing. Spans of one tenant's calls rarely overlap (the tenant, department
and instance locks make most of them take turns); a time inside several goes to the one that
ended first, whose transaction it belongs to when they took turns.

What is read, per span:

- authorisations created (a member newly authorised for an app): their `created_at`, which never
  changes afterwards;
- access ended by a sync (`AccessRevocation`, one row per member, kept as long as the calls):
  disabled, authorisation cancelled, deleted, the enterprise or an app removed, with the
  sessions each ended;
- departments created (`created_at`), removed (`updated_at` of a tombstone), and, for a single
  department, changed (`updated_at`, until a later call changes it again);
- the tenant, its bindings and its app credentials: created, removed, changed.

So the counts of additions and endings stay true for as long as the calls are kept; a change
that adds and ends nothing is only named ("details synced"), never counted, since a later call
to the same rows overwrites the time it left. The app is named by the OpenID client registered
for it (`identity clients`): the marketplace never sends an app's name.

It is longer than a module should be because it infers; once the sync handlers record their
counts with the audit row, in the call's transaction, most of it goes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from identity.access import Reason
from identity.admin.service import SYNC_COLUMNS, SyncRow
from identity.models import (
    DELETED,
    AccessRevocation,
    AppCredential,
    Authorisation,
    Department,
    MarketplaceCall,
    OidcClient,
    Tenant,
    TenantInstance,
)

SUCCESS = "000000"
MARGIN = timedelta(milliseconds=1)
"""Slack on a span's start (`received_at` less `latency_ms`, from two clocks read a few
microseconds apart)."""

Words = tuple[str, str]
"""(Chinese, English)."""

INTERFACES: dict[str, Words] = {
    "tenantSync": ("租户同步", "Enterprise synced"),
    "applicationSync": ("应用同步", "App synced"),
    "authSync": ("成员授权", "Members authorised"),
    "singleOrgSync": ("部门同步", "Department synced"),
    "allOrgSync": ("部门全量同步", "All departments synced"),
    "newInstance": ("新购订购", "Subscription bought"),
    "queryInstance": ("查询订购", "Subscription looked up"),
    "refreshInstance": ("订购续费或变更", "Subscription renewed or changed"),
    "updateInstanceStatus": ("订购冻结或解冻", "Subscription frozen or unfrozen"),
    "releaseInstance": ("订购释放", "Subscription released"),
    "upgradeInstance": ("订购升级", "Subscription upgraded"),
}
"""Each call the audit names, as the admin reads it; the order-lifecycle calls name no tenant
in the audit (their bodies carry only the instance), so they are here for completeness."""
OTHER_CALL: Words = ("云商店调用", "Marketplace call")

RESULTS: dict[str, Words] = {
    SUCCESS: ("成功", "Done"),
    "000001": ("签名校验未通过", "Signature refused"),
    "000002": ("请求内容有误", "Request refused as malformed"),
    "000003": ("订购实例不存在", "Subscription not found"),
    "000005": ("本服务内部错误，云商店会重试", "Failed here; KooGallery retries"),
    "000101": ("应用密钥无法解密", "App secret could not be decrypted"),
}
OTHER_FAILURE: Words = ("失败", "Failed")

_SYNC_REASONS = (
    Reason.MEMBER_DELETED,
    Reason.AUTHORISATION_CANCELLED,
    Reason.MEMBER_DISABLED,
    Reason.TENANT_DELETED,
    Reason.APP_CREDENTIAL_DELETED,
    Reason.INSTANCE_FROZEN,
    Reason.INSTANCE_RELEASED,
    Reason.INSTANCE_UNBOUND,
)


Call = SyncRow


def wrote(call: Call) -> bool:
    """Whether the call may have changed anything: a failed one never does, nor does a debug
    call for a tenant a purchase bound (the only kind with an admin)."""
    return call.result_code == SUCCESS and not call.test


def started(call: Call) -> datetime:
    return call.received_at - timedelta(milliseconds=call.latency_ms) - MARGIN


@dataclass
class Changes:
    """What one call wrote, as read back."""

    authorised: Counter[str] = field(default_factory=Counter)
    """Members newly authorised, by app."""
    ended: Counter[tuple[str, str | None]] = field(default_factory=Counter)
    """Access ended, by (reason, app); a row for a whole tenant or app counts once."""
    sessions_ended: int = 0
    departments_added: list[str] = field(default_factory=list)
    departments_removed: list[str] = field(default_factory=list)
    departments_changed: list[str] = field(default_factory=list)
    tenant_created: bool = False
    bindings_created: int = 0
    bindings_removed: int = 0
    apps_created: set[str] = field(default_factory=set)
    apps_removed: set[str] = field(default_factory=set)
    apps_changed: set[str] = field(default_factory=set)

    def apps(self) -> list[str]:
        named = {*self.authorised, *(app for _, app in self.ended if app)}
        return sorted(named | self.apps_created | self.apps_removed | self.apps_changed)


@dataclass(frozen=True)
class Entry:
    """A call on the syncs page: what it was, what it changed (each part a phrase in both
    languages), and its result, in words."""

    call: Call
    title: Words
    changes: list[Words]
    result: Words
    done: bool
    app: str = ""
    """The app the call concerned (its name, else its id), when it names one."""


# --- reading back what each call wrote --------------------------------------------------------


class _Spans:
    """The calls that wrote, and which of them a time belongs to."""

    def __init__(self, calls: Iterable[Call]) -> None:
        self.calls = sorted((c for c in calls if wrote(c)), key=lambda c: c.received_at)

    def owner(self, moment: datetime | None) -> int | None:
        if moment is None:
            return None
        for call in self.calls:  # earliest end first
            if started(call) <= moment <= call.received_at:
                return call.id
        return None

    @property
    def bounds(self) -> tuple[datetime, datetime] | None:
        if not self.calls:
            return None
        return min(map(started, self.calls)), max(c.received_at for c in self.calls)


async def _overlapping(
    db: AsyncSession, tenant_id: str, calls: Sequence[Call], low: datetime
) -> list[Call]:
    """Older calls of the tenant that wrote and were still running when the page's first began:
    a time in both spans may be theirs."""
    oldest = min(c.id for c in calls)
    rows = await db.execute(
        select(*SYNC_COLUMNS).where(
            MarketplaceCall.tenant_id == tenant_id,
            MarketplaceCall.id < oldest,
            MarketplaceCall.received_at >= low,
        )
    )
    return [Call(*row) for row in rows]


async def changes(db: AsyncSession, tenant_id: str, calls: Sequence[Call]) -> dict[int, Changes]:
    """What each of `calls` (of the tenant) wrote, by call id. Reads the tenant's rows written
    between the first call's start and the last one's end: a few grouped statements, each
    bounded by the tenant's size, none by the calls' history."""
    found: dict[int, Changes] = defaultdict(Changes)
    spans = _Spans(calls)
    if spans.bounds is None:
        return found
    low, high = spans.bounds
    spans = _Spans([*calls, *await _overlapping(db, tenant_id, calls, low)])
    low, high = spans.bounds or (low, high)

    def during(column: Any) -> Any:
        return column.between(low, high)

    for created, app_id, n in await db.execute(
        select(Authorisation.created_at, Authorisation.app_id, func.count())
        .where(Authorisation.tenant_id == tenant_id, during(Authorisation.created_at))
        .group_by(Authorisation.created_at, Authorisation.app_id)
    ):
        if (owner := spans.owner(created)) is not None:
            found[owner].authorised[app_id] += n
    for created, reason, ended_app, n, sessions in await db.execute(
        select(
            AccessRevocation.created_at,
            AccessRevocation.reason,
            AccessRevocation.app_id,
            func.count(),
            func.sum(AccessRevocation.sessions_ended),
        )
        .where(
            AccessRevocation.tenant_id == tenant_id,
            during(AccessRevocation.created_at),
            AccessRevocation.reason.in_([r.value for r in _SYNC_REASONS]),
        )
        .group_by(AccessRevocation.created_at, AccessRevocation.reason, AccessRevocation.app_id)
    ):
        if (owner := spans.owner(created)) is not None:
            found[owner].ended[(reason, ended_app)] += n
            found[owner].sessions_ended += int(sessions or 0)
    await _departments(db, tenant_id, spans, during, found)
    await _tenant(db, tenant_id, spans, during, found)
    return found


async def _departments(
    db: AsyncSession, tenant_id: str, spans: _Spans, during: Any, found: dict[int, Changes]
) -> None:
    rows = await db.execute(
        select(Department.name, Department.state, Department.created_at, Department.updated_at)
        .where(
            Department.tenant_id == tenant_id,
            or_(during(Department.created_at), during(Department.updated_at)),
        )
        .order_by(Department.name)
    )
    for name, state, created, updated in rows:
        if (owner := spans.owner(created)) is not None:
            found[owner].departments_added.append(name)
        if (owner := spans.owner(updated)) is None or updated == created:
            continue
        if state == DELETED:
            found[owner].departments_removed.append(name)
        else:
            found[owner].departments_changed.append(name)


async def _tenant(
    db: AsyncSession, tenant_id: str, spans: _Spans, during: Any, found: dict[int, Changes]
) -> None:
    created = await db.scalar(
        select(Tenant.created_at).where(Tenant.tenant_id == tenant_id, during(Tenant.created_at))
    )
    if (owner := spans.owner(created)) is not None:
        found[owner].tenant_created = True
    for state, made, updated in await db.execute(
        select(TenantInstance.state, TenantInstance.created_at, TenantInstance.updated_at).where(
            TenantInstance.tenant_id == tenant_id,
            or_(during(TenantInstance.created_at), during(TenantInstance.updated_at)),
        )
    ):
        if (owner := spans.owner(made)) is not None:
            found[owner].bindings_created += 1
        if state == DELETED and (owner := spans.owner(updated)) is not None:
            found[owner].bindings_removed += 1
    for app_id, state, made, updated in await db.execute(
        select(
            AppCredential.app_id,
            AppCredential.state,
            AppCredential.created_at,
            AppCredential.updated_at,
        ).where(
            AppCredential.tenant_id == tenant_id,
            or_(during(AppCredential.created_at), during(AppCredential.updated_at)),
        )
    ):
        if (owner := spans.owner(made)) is not None:
            found[owner].apps_created.add(app_id)
        elif (owner := spans.owner(updated)) is not None:
            (found[owner].apps_removed if state == DELETED else found[owner].apps_changed).add(
                app_id
            )


async def app_names(db: AsyncSession, tenant_id: str) -> dict[str, str]:
    """The tenant's apps by id, each with the name its OpenID client was registered under
    (`identity clients add --name`); an app without a client has none (the marketplace sends
    no app name). Several clients of one app: the first name in order."""
    apps = select(AppCredential.app_id).where(AppCredential.tenant_id == tenant_id)
    rows = await db.execute(
        select(OidcClient.app_id, func.min(OidcClient.name))
        .where(OidcClient.app_id.in_(apps))
        .group_by(OidcClient.app_id)
    )
    return {app_id: name for app_id, name in rows}


async def instance_apps(db: AsyncSession, tenant_id: str) -> dict[str, list[str]]:
    """The tenant's apps by the instance they came with: the app an applicationSync or an
    authSync named, when its rows no longer say (a later call rewrote them)."""
    by_instance: dict[str, list[str]] = defaultdict(list)
    for instance_id, app_id in await db.execute(
        select(AppCredential.instance_id, AppCredential.app_id)
        .where(AppCredential.tenant_id == tenant_id)
        .order_by(AppCredential.app_id)
    ):
        by_instance[instance_id].append(app_id)
    return by_instance


# --- in words ---------------------------------------------------------------------------------


def _n(count: int) -> str:
    return f"{count:,}"


def _people(count: int, zh: str, en: str) -> Words:
    return f"{zh} {_n(count)} 名", f"{_n(count)} {en}"


def _departments_words(names: list[str], zh: str, en: str) -> Words:
    if len(names) == 1:
        return f"{zh}部门「{names[0]}」", f"department “{names[0]}” {en}"
    return f"{zh} {_n(len(names))} 个部门", f"{_n(len(names))} departments {en}"


def _sentence(parts: list[Words]) -> list[Words]:
    """English phrases start with a capital when they start the line."""
    return [
        (zh, en[:1].upper() + en[1:]) if i == 0 else (zh, en) for i, (zh, en) in enumerate(parts)
    ]


def describe(
    call: Call,
    found: Changes | None,
    names: dict[str, str],
    by_instance: dict[str, list[str]],
) -> Entry:
    """A call in words: its title, what it changed, its result."""
    title = INTERFACES.get(call.interface, OTHER_CALL)
    result = RESULTS.get(call.result_code, OTHER_FAILURE)
    if call.result_code != SUCCESS:
        return Entry(call, title, [], result, False)
    if call.test:
        nothing = ("调试调用，未做任何更改", "Test call: nothing was changed")
        return Entry(call, title, [nothing], result, True)
    found = found or Changes()
    parts: list[Words] = []
    app = ""
    if call.interface in ("authSync", "applicationSync"):
        apps = found.apps() or by_instance.get(call.instance_id or "", [])
        app = "、".join(names.get(a) or a for a in apps)
    if call.interface == "authSync":
        title, parts = _auth_sync(found)
    elif call.interface == "applicationSync":
        title, parts = _application_sync(found)
    elif call.interface in ("allOrgSync", "singleOrgSync"):
        parts = _department_sync(call.interface, found)
    elif call.interface == "tenantSync":
        parts = _tenant_sync(found)
    parts += _ended_elsewhere(found)
    if found.sessions_ended:
        n = found.sessions_ended
        parts.append((f"结束 {_n(n)} 个会话", f"{_n(n)} session{'s' if n != 1 else ''} ended"))
    return Entry(call, title, _sentence(parts), result, True, app)


def _auth_sync(found: Changes) -> tuple[Words, list[Words]]:
    parts: list[Words] = []
    added = sum(found.authorised.values())
    if added:
        parts.append(_people(added, "新增", "added"))
    ended = Counter[str]()
    for (reason, _), n in found.ended.items():
        ended[reason] += n
    for reason, zh, en in (
        (Reason.MEMBER_DISABLED, "停用", "disabled"),
        (Reason.AUTHORISATION_CANCELLED, "取消授权", "de-authorised"),
        (Reason.MEMBER_DELETED, "删除", "deleted"),
    ):
        if ended[reason]:
            parts.append(_people(ended[reason], zh, en))
    title = (
        INTERFACES["authSync"]
        if added or not parts
        else ("成员授权变更", "Members' access changed")
    )
    return title, parts or [
        (
            "成员资料已同步，无人新增、停用或移除",
            "details synced; no one added, disabled or removed",
        )
    ]


def _application_sync(found: Changes) -> tuple[Words, list[Words]]:
    if found.apps_created:
        return ("应用绑定", "App bound"), [("应用已可供成员登录", "members can now sign in to it")]
    if found.apps_removed or any(r == Reason.APP_CREDENTIAL_DELETED for r, _ in found.ended):
        return ("应用解绑", "App unbound"), [
            ("成员不能再登录此应用", "members can no longer sign in")
        ]
    return ("应用同步", "App credential updated"), [("应用凭证已更新", "client credential updated")]


def _department_sync(interface: str, found: Changes) -> list[Words]:
    parts: list[Words] = []
    if found.departments_added:
        parts.append(_departments_words(found.departments_added, "新增", "added"))
    if found.departments_removed:
        parts.append(_departments_words(found.departments_removed, "删除", "removed"))
    if interface == "singleOrgSync" and not parts and found.departments_changed:
        parts.append(_departments_words(found.departments_changed, "更新", "updated"))
    if parts:
        return parts
    if interface == "allOrgSync":
        return [("部门无增删", "no department added or removed")]
    return [("部门名称或上级已更新", "a department's name or parent changed")]


def _tenant_sync(found: Changes) -> list[Words]:
    parts: list[Words] = []
    if found.tenant_created:
        parts.append(("企业已开通", "enterprise set up"))
    elif found.bindings_created:
        parts.append(("已绑定新的订购", "bound to a new subscription"))
    if found.bindings_removed:
        parts.append(("已解除与订购的绑定", "unbound from a subscription"))
    return parts or [("企业名称或登录地址已同步", "name or sign-in address synced")]


def _ended_elsewhere(found: Changes) -> list[Words]:
    """Endings the call's own words do not already say: the whole enterprise's, a
    subscription's."""
    parts: list[Words] = []
    reasons = {reason for reason, _ in found.ended}
    if Reason.TENANT_DELETED in reasons:
        parts.append(("企业已停用，全体成员已登出", "enterprise removed; every member signed out"))
    if Reason.INSTANCE_UNBOUND in reasons:
        parts.append(("该订购的应用已停用", "the subscription's apps stopped"))
    if Reason.INSTANCE_FROZEN in reasons:
        parts.append(("订购已冻结，成员不能登录", "subscription frozen; members cannot sign in"))
    if Reason.INSTANCE_RELEASED in reasons:
        parts.append(("订购已释放，成员不能登录", "subscription released; members cannot sign in"))
    return parts


async def entries(db: AsyncSession, tenant_id: str, calls: Sequence[Call]) -> list[Entry]:
    """The page's calls, each described."""
    if not calls:
        return []
    found = await changes(db, tenant_id, calls)
    names = await app_names(db, tenant_id)
    by_instance = await instance_apps(db, tenant_id)
    return [describe(c, found.get(c.id), names, by_instance) for c in calls]
