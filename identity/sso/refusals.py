"""Why a login (or logout) was refused, and what the member is told, in Chinese and English.

Each reason has a stable code (logged, counted in metrics, shown on the page so support can find
the log line), an HTTP status, what went wrong and what to do. Nothing on the page comes from
the request or the upstream answer, so nothing there can be injected.
"""

from __future__ import annotations

from dataclasses import dataclass

from identity.access import Reason
from identity.errors import IdentityError


@dataclass(frozen=True)
class Text:
    status: int
    zh: str
    en: str
    zh_todo: str
    en_todo: str


_SIGN_IN_AGAIN = ("请返回应用重新登录。", "Go back to the app and sign in again.")
_ASK_ADMIN = ("请联系企业管理员。", "Ask your enterprise administrator.")
_LATER = (
    "请稍后重试；若持续出现，请联系服务商。",
    "Try again later; if it persists, contact the vendor.",
)
_VENDOR = ("请联系服务商。", "Contact the app vendor.")

CATALOGUE: dict[str, tuple[int, str, str, tuple[str, str]]] = {
    "bad_request": (400, "登录请求不完整。", "The sign-in request is incomplete.", _SIGN_IN_AGAIN),
    "state_mismatch": (
        400,
        "登录请求无法验证（可能已过期，或来自其他浏览器）。",
        "The sign-in request could not be verified (it expired or came from another browser).",
        _SIGN_IN_AGAIN,
    ),
    "redirect_not_allowed": (
        400,
        "跳转地址不在允许列表中。",
        "The address to return to is not allowed.",
        _SIGN_IN_AGAIN,
    ),
    "upstream_denied": (
        403,
        "认证中心拒绝了登录。",
        "The auth centre refused the sign-in.",
        _SIGN_IN_AGAIN,
    ),
    "tenant_unknown": (
        404,
        "未找到该企业，或该企业尚未开通本应用。",
        "This enterprise is unknown or has not been set up for this app.",
        _ASK_ADMIN,
    ),
    "tenant_deleted": (403, "该企业已被删除。", "This enterprise has been deleted.", _ASK_ADMIN),
    "instance_inactive": (
        403,
        "本应用的订购已冻结、到期或已退订。",
        "The subscription to this app is frozen, expired or released.",
        ("请联系企业管理员续费或解冻。", "Ask your enterprise administrator to renew it."),
    ),
    "app_not_configured": (
        403,
        "该企业尚未获得本应用的凭证。",
        "This enterprise has no credentials for this app yet.",
        _ASK_ADMIN,
    ),
    "code_invalid": (
        400,
        "登录码无效、已使用或已过期。",
        "The sign-in code is invalid, already used or expired.",
        _SIGN_IN_AGAIN,
    ),
    "client_invalid": (
        502,
        "认证中心不接受本应用的凭证。",
        "The auth centre rejected this app's credentials.",
        _VENDOR,
    ),
    "upstream_timeout": (
        504,
        "认证中心响应超时。",
        "The auth centre did not answer in time.",
        _LATER,
    ),
    "upstream_error": (502, "认证中心暂时不可用。", "The auth centre is unavailable.", _LATER),
    "upstream_unavailable": (
        503,
        "认证中心多次无响应，已暂停向其发起登录。",
        "The auth centre failed repeatedly; sign-ins through it are paused for a moment.",
        _LATER,
    ),
    "rate_limited": (
        429,
        "登录请求过于频繁。",
        "Too many sign-in requests.",
        ("请稍候片刻再试。", "Wait a moment and try again."),
    ),
    "tenant_mismatch": (
        403,
        "登录账号不属于该企业。",
        "The account you signed in with does not belong to this enterprise.",
        _SIGN_IN_AGAIN,
    ),
    "member_unknown": (
        403,
        "您尚未获得本应用的授权。",
        "You have not been authorised to use this app.",
        _ASK_ADMIN,
    ),
    "authorisation_cancelled": (
        403,
        "您对本应用的授权已被取消。",
        "Your authorisation for this app has been cancelled.",
        _ASK_ADMIN,
    ),
    "member_disabled": (403, "您的账号已被停用。", "Your account has been disabled.", _ASK_ADMIN),
    "member_deleted": (403, "您的账号已被删除。", "Your account has been deleted.", _ASK_ADMIN),
    "database_unavailable": (
        503,
        "服务暂时无法访问数据库，未完成操作。",
        "The service cannot reach its database just now; nothing was changed.",
        ("请稍候片刻再试。", "Wait a moment and try again."),
    ),
    "internal_error": (
        500,
        "服务暂时出错，未完成操作。",
        "Something went wrong on our side; nothing was changed.",
        _LATER,
    ),
    "csrf_failed": (
        403,
        "请求无法验证，未执行退出。",
        "The request could not be verified; you have not been signed out.",
        ("请回到页面重新点击退出。", "Go back and press sign out again."),
    ),
    "switch_unconfirmed": (
        403,
        "无法确认切换账号（确认已使用或已过期，或来自其他浏览器），当前登录未改变。",
        "The switch of account could not be confirmed (it was used or expired, or came from "
        "another browser); who is signed in has not changed.",
        _SIGN_IN_AGAIN,
    ),
    "form_not_accepted": (
        415,
        "请求的格式无法接受（只接受普通表单）。",
        "The request was sent in a format that is not accepted (only plain forms).",
        ("请回到页面重新提交。", "Go back to the page and press its button again."),
    ),
}

SIGN_IN_AS_SOMEONE_ELSE = frozenset(
    {
        "member_unknown",
        "authorisation_cancelled",
        "member_disabled",
        "member_deleted",
        "tenant_mismatch",
        "upstream_denied",
    }
)
"""Refusals of the account the auth centre signed in, not of the enterprise: the page offers to
sign in as someone else, through the auth centre's logout (it would sign the same account in
again otherwise)."""

_ENDED_APP = (
    "本应用已不再向您所在的企业开放。",
    "This app is no longer available to your enterprise.",
)
ENDINGS: dict[Reason, tuple[str, str]] = {
    Reason.MEMBER_DISABLED: (
        "您的账号已被企业停用。",
        "Your account has been disabled by your enterprise.",
    ),
    Reason.AUTHORISATION_CANCELLED: (
        "您对本应用的授权已被取消。",
        "Your authorisation for this app has been cancelled.",
    ),
    Reason.MEMBER_DELETED: (
        "您的账号已被企业删除。",
        "Your account has been deleted by your enterprise.",
    ),
    Reason.TENANT_DELETED: (
        "您所在的企业已不再使用本服务。",
        "Your enterprise no longer uses this service.",
    ),
    Reason.INSTANCE_FROZEN: (
        "本应用的订购已被冻结（例如已到期）。",
        "The subscription to this app has been frozen (for example, it expired).",
    ),
    Reason.INSTANCE_RELEASED: (
        "本应用的订购已退订。",
        "The subscription to this app has been released.",
    ),
    Reason.APP_CREDENTIAL_DELETED: _ENDED_APP,
    Reason.INSTANCE_UNBOUND: _ENDED_APP,
    Reason.ADMIN_ENDED: (
        "企业管理员结束了您的会话。",
        "Your enterprise administrator ended your session.",
    ),
    Reason.PASSWORD_RESET: (
        "企业管理员重置了您的密码，新的初始密码已发送给您。",
        "Your administrator reset your password; the new initial password was sent to you.",
    ),
    Reason.PASSWORD_CHANGED: (
        "您的密码已在别处修改，请使用新密码重新登录。",
        "Your password was changed elsewhere; sign in again with the new one.",
    ),
}
"""Why a session was ended for its member, for every `Reason`, as they are told once on their
next visit. Only the member's own account, enterprise or subscription is named."""

UPSTREAM_REASONS = {
    "invalid_grant": "code_invalid",
    "invalid_client": "client_invalid",
    "timeout": "upstream_timeout",
    "busy": "upstream_timeout",
    "unavailable": "upstream_unavailable",
}


class Refusal(IdentityError):
    """A refused login or logout; `reason` is a key of CATALOGUE.

    `retry_after` (seconds) becomes a `Retry-After` header. `ends_login` is set once the
    callback carrying a Flow B login's own state has been handled: only then does the refusal
    clear the login cookie (a callback anyone else sends must not lift Flow B's protection)."""

    def __init__(self, reason: str, log_detail: str = "", retry_after: float | None = None):
        status, zh, en, (zh_todo, en_todo) = CATALOGUE[reason]
        super().__init__(en)
        self.code = reason
        self.log_detail = log_detail
        self.text = Text(status, zh, en, zh_todo, en_todo)
        self.retry_after = retry_after
        self.ends_login = False
        self.tenant_id: str | None = None
        """The enterprise the refused login was for, once known: the page links to signing in
        there again (as someone else, for the reasons of SIGN_IN_AS_SOMEONE_ELSE)."""
        self.app_id: str | None = None
        self.next: str | None = None
