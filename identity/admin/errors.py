"""The admin wing's domain errors: a stable `code`, the HTTP `status` the JSON API and the pages
answer with, and what the person is told in Chinese and English. Nothing in a message comes
from the request."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from identity.errors import IdentityError
from identity.notify import NotifyFailed, NotifyUnavailable

if TYPE_CHECKING:
    from identity.admin.reset_limits import Limited
    from identity.sessions import SignedIn


class AdminError(IdentityError):
    status = 400
    zh = "请求无法完成。"
    en = "The request could not be completed."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.en)


class BadRequest(AdminError):
    """A malformed parameter; the message names it."""

    code = "bad_request"
    status = 400


class Unauthenticated(AdminError):
    code = "unauthenticated"
    status = 401
    zh = "请先登录。"
    en = "Sign in first."


class OtherTenant(AdminError):
    """A request naming another tenant: refused before anything is looked up, so the answer
    says nothing about what that tenant holds."""

    code = "forbidden"
    status = 403
    zh = "您只能管理本企业。"
    en = "You administer only your own enterprise."


class CsrfFailed(AdminError):
    code = "csrf_failed"
    status = 403
    zh = "请求无法验证，请回到页面重试。"
    en = "Send the X-CSRF-Token header (csrfToken of /sso/session), or use the page's form."


class Undeliverable(AdminError):
    """A code or a password could not be sent (no sender for the channel, or the sender
    failed): nothing was counted or changed."""

    code = "notify_unavailable"
    status = 503
    zh = "无法发送短信或邮件，请稍后再试或联系服务商。"
    en = "The message could not be sent; try again later or contact the vendor."


class SignInFailed(AdminError):
    """Every refused local sign-in, whatever the cause (no account enumeration)."""

    code = "sign_in_failed"
    status = 401
    zh = "账号或密码错误，或该账号暂时无法登录。"
    en = "The account or password is wrong, or the account cannot sign in now."


class SignInBusy(AdminError):
    """No password could be checked in time: every hashing slot was taken. Nothing was
    counted (identity.admin.throttle)."""

    code = "busy"
    status = 503
    zh = "服务繁忙，请稍后重试。"
    en = "The service is busy; try again in a moment."
    retry_after = 1


class SignInExpired(AdminError):
    """The change form's proof of the sign-in with an initial password is out of date, forged,
    or for a password that is no longer the member's to change: sign in again."""

    code = "sign_in_expired"
    status = 401
    zh = "登录已失效，请重新登录后再设置新密码。"
    en = "Your sign-in has expired; sign in again to choose your password."


class NotAdmin(AdminError):
    code = "forbidden"
    status = 403
    zh = "您不是本企业的管理员。"
    en = "You are not an administrator of this enterprise."

    def __init__(self, member: SignedIn | None = None) -> None:
        super().__init__()
        self.member = member
        """Who is signed in, when the console's check knew it: its page then names them and
        offers to sign in as someone else (`console.refused`)."""


class MemberNotFound(AdminError):
    code = "member_not_found"
    status = 404
    zh = "本企业没有该成员。"
    en = "This enterprise has no such member."


class ContactMissing(AdminError):
    code = "contact_missing"
    status = 409
    zh = "没有可用的手机号或邮箱，无法发送。"
    en = "There is no mobile number or e-mail address to send to."

    def __init__(self, whose: str) -> None:
        super().__init__(f"{self.en} ({whose})")
        self.whose = whose
        """"admin" or "member": whose contact is missing."""


class RateLimited(AdminError):
    code = "rate_limited"
    status = 429
    zh = "重置过于频繁，请稍后再试。"
    en = "Too many resets; try again later."

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"{self.en} Next one allowed in {retry_after} s.")
        self.retry_after = retry_after
        """Whole seconds until the next try is allowed (a reset: for this member and this
        admin)."""


class TooManyResets(RateLimited):
    """A password reset past one of its limits: which one, whose count is full (the member's,
    the admin's) and when the next is allowed (identity.admin.reset_limits)."""

    def __init__(self, limited: Limited) -> None:
        super().__init__(limited.seconds)
        self.message = f"Too many resets: {limited.en}. Next one allowed in {limited.seconds} s."
        self.args = (self.message,)
        self.limited = limited


class TooManyTries(RateLimited):
    """Password tries from one client address past its limit, refused before any hash is
    computed (identity.admin.throttle)."""

    zh = "登录尝试过于频繁，请稍后再试。"
    en = "Too many sign-in attempts from your network; try again later."


class ResetNotFound(AdminError):
    code = "reset_not_found"
    status = 404
    zh = "没有该密码重置请求。"
    en = "There is no such password reset."


class ResetExpired(AdminError):
    code = "reset_expired"
    status = 410
    zh = "验证码已过期，请重新发起重置。"
    en = "The code has expired; start a new reset."


class ResetUsed(AdminError):
    code = "reset_used"
    status = 409
    zh = "该重置已完成，验证码不能再次使用。"
    en = "This reset is already done; its code cannot be used again."


class ResetDead(AdminError):
    code = "reset_dead"
    status = 410
    zh = "验证码错误次数过多，请重新发起重置。"
    en = "Too many wrong codes; start a new reset."


class ResetBusy(AdminError):
    code = "reset_in_progress"
    status = 409
    zh = "该重置正在完成中，请稍候。"
    en = "This reset is being completed; wait a moment."


class CodeInvalid(AdminError):
    code = "code_invalid"
    status = 400
    zh = "验证码错误。"
    en = "The code is wrong."

    def __init__(self, tries_left: int) -> None:
        super().__init__(f"{self.en} {tries_left} tries left.")
        self.tries_left = tries_left


@contextmanager
def delivering() -> Iterator[None]:
    """A failed or impossible send, as the console answers it (`Undeliverable`)."""
    try:
        yield
    except (NotifyUnavailable, NotifyFailed) as exc:
        raise Undeliverable() from exc
