"""The admin wing's domain errors: a stable `code`, the HTTP `status` the JSON API and the pages
answer with, and what the person is told in Chinese and English. Nothing in a message comes
from the request."""

from __future__ import annotations

from identity.errors import IdentityError


class AdminError(IdentityError):
    status = 400
    zh = "请求无法完成。"
    en = "The request could not be completed."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.en)


class SignInFailed(AdminError):
    """Every refused local sign-in, whatever the cause (no account enumeration)."""

    code = "sign_in_failed"
    status = 401
    zh = "账号或密码错误，或该账号暂时无法登录。"
    en = "The account or password is wrong, or the account cannot sign in now."


class CurrentPasswordInvalid(AdminError):
    """Changing a password with a wrong current one (or while locked out)."""

    code = "current_password_invalid"
    status = 400
    zh = "当前密码错误，或该账号暂时无法登录。"
    en = "The current password is wrong, or the account cannot sign in now."


class NotAdmin(AdminError):
    code = "forbidden"
    status = 403
    zh = "您不是本企业的管理员。"
    en = "You are not an administrator of this enterprise."


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
        """Whole seconds until the next reset is allowed for this member and this admin."""


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
