"""Messages to members and admins: reset codes and initial passwords (issue: local passwords).

A `Message` goes out through the `Notifier` built once from the settings (`build_notifier`),
which holds one sender per channel:

- `IDENTITY_NOTIFY_FILE=PATH` (development, the demo and the tests): every message, whatever
  its channel, is appended to PATH as one JSON line `{"channel", "to", "kind", "secret",
  "text"}`. Nothing is sent anywhere else then.
- e-mail: SMTP (`IDENTITY_SMTP_*`), the standard library's client in a worker thread, each
  network operation bounded by `IDENTITY_SMTP_TIMEOUT_SECONDS`.
- SMS: the operator's plug-in, `IDENTITY_SMS_SENDER=package.module:factory`; `factory(settings)`
  returns an object with `async def send(message) -> None` that raises when it did not send.

A message for a channel no sender serves raises `NotifyUnavailable`; a sender that fails raises
`NotifyFailed`. Nothing is dropped silently: the caller decides what a failed send undoes. The
secret a message carries (a code, a password) is never logged, nor shown by `repr`.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Literal, Protocol

import structlog

from identity.errors import IdentityError
from identity.settings import Settings

log = structlog.get_logger("identity.notify")

Channel = Literal["sms", "email"]
Kind = Literal["reset_code", "initial_password"]
CHANNELS: tuple[Channel, ...] = ("sms", "email")

SUBJECTS: dict[Kind, str] = {
    "reset_code": "密码重置验证码 / Password reset code",
    "initial_password": "您的初始密码 / Your initial password",
}


@dataclass(frozen=True)
class Message:
    channel: Channel
    to: str
    kind: Kind
    secret: str = field(repr=False)
    """The code or password `text` carries, kept apart so a development sender can show it."""
    text: str = field(repr=False)
    """What the recipient reads, in Chinese and English; it contains `secret`."""


class Sender(Protocol):
    async def send(self, message: Message) -> None: ...


class NotifyUnavailable(IdentityError):
    """No sender is configured for the channel a message needs."""

    code = "notify_unavailable"


class NotifyFailed(IdentityError):
    """The sender was asked and did not send (server down, refused, timed out)."""

    code = "notify_failed"


class NotifyConfigError(ValueError):
    """A notification setting that cannot work (reported at start-up, naming the setting)."""


class FileSender:
    """Appends one JSON line per message. One `write` of the whole line to a descriptor opened
    with O_APPEND: lines from several processes never interleave (the file is created 0600:
    it holds secrets)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def send(self, message: Message) -> None:
        record = {
            "channel": message.channel,
            "to": message.to,
            "kind": message.kind,
            "secret": message.secret,
            "text": message.text,
        }
        line = json.dumps(record, ensure_ascii=False) + "\n"
        await asyncio.to_thread(self._append, line.encode())

    def _append(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            if os.write(fd, data) != len(data):
                raise OSError(f"short write to {self.path}")
        finally:
            os.close(fd)


class SmtpSender:
    """E-mail through an SMTP server: STARTTLS (when on, a server that does not offer it is
    refused, never used in clear), then AUTH when a user name is set. `smtplib` blocks, so it
    runs in a worker thread; its timeout bounds each network operation."""

    def __init__(self, settings: Settings) -> None:
        assert settings.smtp_host and settings.smtp_from  # checked by Settings
        self.host, self.port = settings.smtp_host, settings.smtp_port
        self.sender = settings.smtp_from
        self.username = settings.smtp_username
        self.password = settings.smtp_password
        self.starttls = settings.smtp_starttls
        self.timeout = settings.smtp_timeout_seconds

    async def send(self, message: Message) -> None:
        if message.channel != "email":
            raise NotifyUnavailable(f"SMTP sends e-mail, not {message.channel}")
        await asyncio.to_thread(self._send, self._compose(message))

    def _compose(self, message: Message) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = message.to
        email["Subject"] = SUBJECTS[message.kind]
        email.set_content(message.text)
        return email

    def _send(self, email: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if self.username and self.password is not None:
                smtp.login(self.username, self.password.get_secret_value())
            smtp.send_message(email)


def load_plugin(reference: str, settings: Settings) -> Sender:
    """`package.module:factory` → `factory(settings)`, which must have an async `send`."""
    module_name, _, attribute = reference.partition(":")
    where = f"IDENTITY_SMS_SENDER={reference}"
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise NotifyConfigError(f"{where}: cannot load it ({exc})") from None
    sender = factory(settings)
    if not callable(getattr(sender, "send", None)):
        raise NotifyConfigError(f"{where}: the factory's object has no send(message)")
    return sender  # type: ignore[no-any-return]


class Notifier:
    """One sender per channel; `send` raises rather than drops (see the module's docstring)."""

    def __init__(self, senders: dict[Channel, Sender]) -> None:
        self._senders = dict(senders)

    def can_send(self, channel: Channel) -> bool:
        return channel in self._senders

    async def send(self, message: Message) -> None:
        sender = self._senders.get(message.channel)
        if sender is None:
            raise NotifyUnavailable(f"no sender is configured for {message.channel}")
        try:
            await sender.send(message)
        except NotifyUnavailable:
            raise
        except Exception as exc:  # whatever the sender (or a plug-in) raised
            # The exception's text may quote the message (a plug-in's, say): only its type.
            log.warning(
                "notify.failed",
                channel=message.channel,
                kind=message.kind,
                error=type(exc).__name__,
            )
            raise NotifyFailed(f"the {message.channel} message could not be sent") from exc
        log.info("notify.sent", channel=message.channel, kind=message.kind)


def build_notifier(settings: Settings) -> Notifier:
    """The development file takes every channel when set; otherwise SMTP for e-mail when
    `IDENTITY_SMTP_HOST` is set and the plug-in for SMS when `IDENTITY_SMS_SENDER` is."""
    if settings.notify_file is not None:
        file_sender = FileSender(settings.notify_file)
        return Notifier({channel: file_sender for channel in CHANNELS})
    senders: dict[Channel, Sender] = {}
    if settings.smtp_host:
        senders["email"] = SmtpSender(settings)
    if settings.sms_sender:
        senders["sms"] = load_plugin(settings.sms_sender, settings)
    return Notifier(senders)


def mask(channel: Channel, to: str) -> str:
    """What the admin is told of where a message went: `+86138****0001`, `a***@acme.com`."""
    if channel == "email":
        local, at, domain = to.partition("@")
        return f"{local[:1]}***{at}{domain}" if at else "***"
    if len(to) >= 9:
        return f"{to[:-8]}****{to[-4:]}"
    return "*" * max(len(to) - 2, 1) + to[-2:]
