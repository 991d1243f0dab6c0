"""Members' passwords at the simulated marketplace: the rules a new one must meet, and the
messages that carry an initial password or a reset code (contract §6).

The rules are identity's own for local passwords (identity.admin.passwords: at least 8
characters of 3 classes, not the account, not the current one), so a developer meets one policy
in the demo. Messages go through the development sender identity uses (identity/notify.py: one
JSON line per message in `IDENTITY_NOTIFY_FILE`), with its kinds `initial_password` (to the
member's mobile) and `reset_code` (to the administrator's); their texts name the simulated
marketplace, so they are not taken for identity's own. No other sender is ever used: the
simulator must not text real phones.
"""

from __future__ import annotations

from pathlib import Path

from identity.notify import FileSender, Message
from identity.simulator.console.world import NotAllowed

DIFFERENT = ("两次输入的密码不一致。", "The two passwords differ.")


def initial_password(user_name: str) -> str:
    """16 random letters and digits without look-alikes, as identity's own initial ones.
    identity.admin.passwords (and the hashing it brings) loads at the first use, not when the
    simulator starts."""
    from identity.admin import passwords

    return passwords.initial_password(user_name)


def password_problems(
    password: str, again: str, user_name: str, current: str
) -> list[tuple[str, str]]:
    """What is wrong with a new password, each (zh, en); empty when it may be used."""
    from identity.admin.passwords import PROBLEMS, check_policy

    problems = [(p.zh, p.en) for p in check_policy(password, user_name)]
    if password == current:
        same = PROBLEMS["same_as_current"]
        problems.append((same.zh, same.en))
    if password != again:
        problems.append(DIFFERENT)
    return problems


class Messages:
    """The development sender, when the simulator has one (`--notify-file`)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._sender = FileSender(path) if path is not None else None

    async def send(self, message: Message) -> None:
        """Write `message`, or say why it cannot be (`NotAllowed`): nothing is then changed."""
        if self._sender is None:
            raise NotAllowed(
                "未配置开发发送器：请以 IDENTITY_NOTIFY_FILE 或 --notify-file 启动模拟器",
                "No development sender: start the simulator with IDENTITY_NOTIFY_FILE "
                "or --notify-file",
            )
        try:
            await self._sender.send(message)
        except OSError as exc:
            raise NotAllowed(
                f"短信未能发送（{exc.strerror}）", f"The message could not be sent ({exc.strerror})"
            ) from None

    async def initial_password(self, mobile: str, account: str, password: str) -> None:
        text = (
            f"【云商店（模拟）】您的联营账号 {account} 已创建，初始密码 {password}，"
            "首次登录须修改。 / KooGallery (simulated): your account "
            f"{account} was created; initial password {password}; you must change it at "
            "your first sign-in."
        )
        await self.send(Message("sms", mobile, "initial_password", password, text))

    async def reset_code(self, mobile: str, account: str, code: str) -> None:
        text = (
            f"【云商店（模拟）】重置成员 {account} 密码的验证码 {code}，5 分钟内有效。 / "
            f"KooGallery (simulated): code {code} resets the password of {account}; "
            "valid for 5 minutes."
        )
        await self.send(Message("sms", mobile, "reset_code", code, text))
