"""What each marketplace call on the syncs page did to the admin's tenant, in words.

Each call's handler counts what it changed, in the call's own transaction, and the audit row
keeps the counts (`MarketplaceCall.changes`, written by `identity.marketplace.service` and
`audit.record_call`): counts, flags and identifiers, never a name or anything else of the
payload. This module only puts them in words, in Chinese and English. What a single department
is called is looked up by its org code when the page is shown (its current name: one query per
page); an app goes by the name its OpenID client was registered under (`identity clients`), else
by its id, since the marketplace never sends an app's name. The calls audited before the
handlers recorded anything (revision 0013) have no changes, and say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from identity.admin.service import SyncRow
from identity.models import AppCredential, Department, OidcClient

SUCCESS = "000000"

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
"""Each call the audit names, as the admin reads it. The order-lifecycle calls carry only their
instance: the audit names the tenant when exactly one is bound to it, and so they are shown."""
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

NOT_RECORDED: Words = ("变更未记录（早于本版本）", "changes not recorded (before this version)")
NOTHING_IN_TEST: Words = ("调试调用，未做任何更改", "Test call: nothing was changed")
STALE: Words = ("早于已保存的数据，未做更改", "older than what is stored; nothing changed")

Call = SyncRow
Changes = dict[str, Any]


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


# --- in words ---------------------------------------------------------------------------------


def _n(count: int) -> str:
    return f"{count:,}"


def _people(count: int, zh: str, en: str) -> Words:
    return f"{zh} {_n(count)} 名", f"{_n(count)} {en}"


def _departments(count: int) -> str:
    return f"{_n(count)} department{'' if count == 1 else 's'}"


def _sentence(parts: list[Words]) -> list[Words]:
    """English phrases start with a capital when they start the line."""
    return [
        (zh, en[:1].upper() + en[1:]) if i == 0 else (zh, en) for i, (zh, en) in enumerate(parts)
    ]


def _auth_sync(changes: Changes) -> tuple[Words, list[Words]]:
    parts: list[Words] = []
    added = changes.get("added", 0)
    if added:
        parts.append(_people(added, "新增", "added"))
    for key, zh, en in (
        ("disabled", "停用", "disabled"),
        ("deauthorised", "取消授权", "de-authorised"),
        ("deleted", "删除", "deleted"),
    ):
        if changes.get(key):
            parts.append(_people(changes[key], zh, en))
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


def _application_sync(changes: Changes) -> tuple[Words, list[Words]]:
    change = changes.get("change")
    if change == "bound":
        return ("应用绑定", "App bound"), [("应用已可供成员登录", "members can now sign in to it")]
    if change == "unbound":
        return ("应用解绑", "App unbound"), [
            ("成员不能再登录此应用", "members can no longer sign in")
        ]
    if change == "updated":
        return ("应用同步", "App credential updated"), [
            ("应用凭证已更新", "client credential updated")
        ]
    return INTERFACES["applicationSync"], [STALE]


def _single_org_sync(changes: Changes, names: dict[str, str]) -> list[Words]:
    code = str(changes.get("org_code", ""))
    name = names.get(code) or code
    said: dict[str, Words] = {
        "added": (f"新增部门「{name}」", f"department “{name}” added"),
        "changed": (f"更新部门「{name}」", f"department “{name}” updated"),
        "removed": (f"删除部门「{name}」", f"department “{name}” removed"),
        "unchanged": (f"部门「{name}」无变化", f"department “{name}” unchanged"),
    }
    return [said.get(str(changes.get("change")), STALE)]


def _all_org_sync(changes: Changes) -> list[Words]:
    listed, added, removed = (changes.get(k, 0) for k in ("departments", "added", "removed"))
    if listed and added == listed:  # the first full sync: every one of them is new
        parts = [(f"新增 {_n(added)} 个部门", f"{_departments(added)} added")]
    else:
        parts = [(f"共 {_n(listed)} 个部门", _departments(listed))]
        if added:
            parts.append((f"新增 {_n(added)} 个", f"{_n(added)} added"))
    if removed:
        parts.append((f"删除 {_n(removed)} 个", f"{_n(removed)} removed"))
    if not added and not removed:
        parts.append(("无增删", "none added or removed"))
    return parts


def _tenant_sync(changes: Changes) -> list[Words]:
    parts: list[Words] = []
    if changes.get("created"):
        parts.append(("企业已开通", "enterprise set up"))
    elif changes.get("bound"):
        parts.append(("已绑定新的订购", "bound to a new subscription"))
    for key, words in (
        ("unbound", ("已解除与订购的绑定", "unbound from a subscription")),
        ("removed", ("企业已停用", "enterprise removed")),
        ("signed_out", ("全体成员已登出", "every member signed out")),
        ("apps_stopped", ("该订购的应用已停用", "the subscription's apps stopped")),
    ):
        if changes.get(key):
            parts.append(words)
    return parts or [("企业名称或登录地址已同步", "name or sign-in address synced")]


_STATUS: dict[str, tuple[Words, Words]] = {
    "frozen": (
        ("订购冻结", "Subscription frozen"),
        ("订购已冻结，成员不能登录", "subscription frozen; members cannot sign in"),
    ),
    "unfrozen": (
        ("订购解冻", "Subscription unfrozen"),
        ("订购已解冻，成员可以登录", "subscription unfrozen; members can sign in again"),
    ),
    "released": (
        INTERFACES["releaseInstance"],
        ("订购已释放，成员不能登录", "subscription released; members cannot sign in"),
    ),
}
_SCENES: dict[str, Words] = {
    "TRIAL_TO_FORMAL": ("试用已转为正式订购", "trial turned into a paid subscription"),
    "RENEWAL": ("订购已续费", "subscription renewed"),
    "UNSUBSCRIBE_RENEWAL_PERIOD": ("已退订续费周期", "renewal period unsubscribed"),
    "RENEWAL_CHANGE": ("续费已变更", "renewal changed"),
}


def _lifecycle(title: Words, changes: Changes) -> tuple[Words, list[Words]]:
    """The order-lifecycle calls: frozen, unfrozen, released, renewed, upgraded."""
    if (status := changes.get("status")) in _STATUS:
        title, done = _STATUS[status]
        if not changes.get("changed", True):
            return title, [("状态未变，为重复的调用", "already so; nothing changed")]
        return title, [done]
    if (scene := changes.get("scene")) in _SCENES:
        return title, [_SCENES[scene]]
    if changes.get("upgraded"):
        return title, [("订购规格已升级", "plan upgraded")]
    return title, []


def describe(call: Call, apps: dict[str, str], departments: dict[str, str]) -> Entry:
    """A call in words: its title, what it changed, its result."""
    title = INTERFACES.get(call.interface, OTHER_CALL)
    result = RESULTS.get(call.result_code, OTHER_FAILURE)
    changes = call.changes
    if call.result_code != SUCCESS:
        return Entry(call, title, [], result, False)
    if changes is None:
        return Entry(call, title, _sentence([NOT_RECORDED]), result, True)
    if call.test and not changes:
        return Entry(call, title, [NOTHING_IN_TEST], result, True)
    parts: list[Words] = []
    app_id = changes.get("app_id")
    if call.interface == "authSync":
        title, parts = _auth_sync(changes)
    elif call.interface == "applicationSync":
        title, parts = _application_sync(changes)
    elif call.interface == "singleOrgSync":
        parts = _single_org_sync(changes, departments)
    elif call.interface == "allOrgSync":
        parts = _all_org_sync(changes)
    elif call.interface == "tenantSync":
        parts = _tenant_sync(changes)
    else:
        title, parts = _lifecycle(title, changes)
    if n := changes.get("sessions_ended", 0):
        parts.append((f"结束 {_n(n)} 个会话", f"{_n(n)} session{'s' if n != 1 else ''} ended"))
    app = (apps.get(app_id) or app_id) if isinstance(app_id, str) else ""
    return Entry(call, title, _sentence(parts), result, True, app)


# --- what the words need from the database ----------------------------------------------------


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


async def department_names(
    db: AsyncSession, tenant_id: str, calls: Sequence[Call]
) -> dict[str, str]:
    """The current names of the departments the page's single-department calls name, by org
    code: one query, on the primary key, however many calls."""
    codes = {
        str(c.changes["org_code"])
        for c in calls
        if c.interface == "singleOrgSync" and c.changes and "org_code" in c.changes
    }
    if not codes:
        return {}
    rows = await db.execute(
        select(Department.org_code, Department.name).where(
            Department.tenant_id == tenant_id, Department.org_code.in_(sorted(codes))
        )
    )
    return {code: name for code, name in rows}


async def entries(db: AsyncSession, tenant_id: str, calls: Sequence[Call]) -> list[Entry]:
    """The page's calls, each described."""
    if not calls:
        return []
    apps = await app_names(db, tenant_id)
    departments = await department_names(db, tenant_id, calls)
    return [describe(c, apps, departments) for c in calls]
