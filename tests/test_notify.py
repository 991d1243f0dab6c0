"""Notifications: the development file sender, SMTP against a small SMTP server
started here, the operator's SMS plug-in, and a channel nobody serves failing loudly."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError
from structlog.testing import capture_logs

from identity.notify import (
    FileSender,
    Message,
    NotifyConfigError,
    NotifyFailed,
    NotifyUnavailable,
    build_notifier,
    mask,
)
from identity.settings import Settings

CODE = "204817"
TEXT = (
    f"您正在重置成员 bob 的密码，验证码：{CODE}。\nYou are resetting bob's password. Code: {CODE}."
)


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def message(channel: str = "email", to: str = "admin@acme.example.com") -> Message:
    return Message(channel, to, "reset_code", CODE, TEXT)  # type: ignore[arg-type]


# --- the development file ------------------------------------------------------------------------


async def test_the_file_sender_appends_one_json_line_per_message_private_to_its_owner(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.jsonl"
    notifier = build_notifier(settings(notify_file=path, smtp_host="smtp.invalid", smtp_from="a@b"))
    await notifier.send(message("sms", "+8613800000001"))
    await notifier.send(message("email"))  # the file takes e-mail too, even with SMTP set
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "channel": "sms",
            "to": "+8613800000001",
            "kind": "reset_code",
            "secret": CODE,
            "text": TEXT,
        },
        {
            "channel": "email",
            "to": "admin@acme.example.com",
            "kind": "reset_code",
            "secret": CODE,
            "text": TEXT,
        },
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_lines_appended_at_once_by_tasks_and_processes_never_mix(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    sender = FileSender(path)
    long_text = "密码 / password " * 600  # ~10 KB a line: more than a pipe's atomic write
    script = (
        "import asyncio, sys\n"
        "from identity.notify import FileSender, Message\n"
        "s = FileSender(__import__('pathlib').Path(sys.argv[1]))\n"
        "async def main():\n"
        "    await asyncio.gather(*(s.send(Message('sms', f'p{sys.argv[2]}-{i}', 'reset_code',"
        " '1', sys.argv[3])) for i in range(50)))\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    others = [
        subprocess.Popen([sys.executable, "-c", script, str(path), str(n), long_text], env=env)
        for n in range(2)
    ]
    await asyncio.gather(
        *(sender.send(Message("email", f"t-{i}", "reset_code", "1", long_text)) for i in range(50))
    )
    assert [await asyncio.to_thread(p.wait) for p in others] == [0, 0]
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 150
    assert {r["text"] for r in records} == {long_text}
    assert len({r["to"] for r in records}) == 150


def test_a_message_shows_no_secret_in_its_repr() -> None:
    shown = repr(message())
    assert CODE not in shown and "admin@acme.example.com" in shown


def test_destinations_are_masked() -> None:
    assert mask("sms", "+8613812340001") == "+86138****0001"
    assert mask("sms", "13812340001") == "138****0001"
    assert mask("email", "alice@acme.example.com") == "a***@acme.example.com"
    assert CODE not in mask("sms", "12345678")


# --- nobody to send through ----------------------------------------------------------------------


async def test_a_channel_without_a_sender_is_refused_not_dropped() -> None:
    notifier = build_notifier(settings())
    assert not notifier.can_send("sms") and not notifier.can_send("email")
    for channel in ("sms", "email"):
        with pytest.raises(NotifyUnavailable) as refused:
            await notifier.send(message(channel))
        assert refused.value.code == "notify_unavailable"


def test_smtp_settings_must_be_complete() -> None:
    with pytest.raises(ValidationError, match="IDENTITY_SMTP_FROM"):
        settings(smtp_host="smtp.example.com")
    with pytest.raises(ValidationError, match="IDENTITY_SMTP_PASSWORD"):
        settings(smtp_host="smtp.example.com", smtp_from="a@b", smtp_username="u")
    defaults = settings(smtp_host="smtp.example.com", smtp_from="a@b")
    assert (defaults.smtp_port, defaults.smtp_starttls) == (587, True)


# --- SMTP ----------------------------------------------------------------------------------------


class SmtpServer:
    """Just enough of RFC 5321 (and AUTH PLAIN, RFC 4954) for smtplib to deliver a message."""

    def __init__(self) -> None:
        self.received: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[str] = []
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reply = self._replier(writer)
        await reply("220 test ESMTP")
        sender, recipients = "", list[str]()
        while line := (await reader.readline()).decode().rstrip("\r\n"):
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                await reply("250-test", "250-AUTH PLAIN", "250 8BITMIME")
            elif verb == "AUTH":
                self.logins.append(base64.b64decode(line.split()[2]).decode())
                await reply("235 authenticated")
            elif verb == "MAIL":
                sender, recipients = line, []
                await reply("250 ok")
            elif verb == "RCPT":
                recipients.append(line)
                await reply("250 ok")
            elif verb == "DATA":
                await reply("354 go on")
                data = b""
                while (chunk := await reader.readline()) != b".\r\n":
                    data += chunk
                self.envelopes.append((sender, recipients))
                self.received.append(message_from_bytes(data, policy=default))
                await reply("250 queued")
            elif verb == "QUIT":
                await reply("221 bye")
                break
            else:
                await reply("502 not implemented")
        writer.close()

    @staticmethod
    def _replier(writer: asyncio.StreamWriter) -> Any:
        async def reply(*lines: str) -> None:
            writer.write("".join(f"{line}\r\n" for line in lines).encode())
            await writer.drain()

        return reply


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    server = SmtpServer()
    listening = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    server.port = listening.sockets[0].getsockname()[1]
    yield server
    listening.close()
    await listening.wait_closed()


def smtp_settings(server: SmtpServer, **values: Any) -> Settings:
    base: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": server.port,
        "smtp_from": "identity@vendor.example.com",
        "smtp_timeout_seconds": 5,
    }
    return settings(**(base | values))


async def test_smtp_delivers_the_bilingual_text_with_a_login(smtp: SmtpServer) -> None:
    notifier = build_notifier(
        smtp_settings(
            smtp,
            smtp_starttls=False,
            smtp_username="mailer",
            smtp_password=SecretStr("mail-secret"),
        )
    )
    assert notifier.can_send("email") and not notifier.can_send("sms")
    await notifier.send(message())
    (email,) = smtp.received
    assert email["To"] == "admin@acme.example.com"
    assert email["From"] == "identity@vendor.example.com"
    assert email["Subject"] == "密码重置验证码 / Password reset code"
    assert email.get_content().replace("\r\n", "\n").strip() == TEXT
    assert smtp.logins == ["\0mailer\0mail-secret"]
    assert "admin@acme.example.com" in smtp.envelopes[0][1][0]


async def test_smtp_refuses_a_server_without_starttls_and_says_so(smtp: SmtpServer) -> None:
    notifier = build_notifier(smtp_settings(smtp))  # STARTTLS is on by default
    with capture_logs() as logs, pytest.raises(NotifyFailed) as failed:
        await notifier.send(message())
    assert failed.value.code == "notify_failed"
    assert smtp.received == []
    assert CODE not in repr(logs) and TEXT not in repr(logs)


async def test_an_unreachable_smtp_server_is_a_failure(smtp: SmtpServer) -> None:
    notifier = build_notifier(smtp_settings(smtp, smtp_starttls=False, smtp_port=1))
    with pytest.raises(NotifyFailed):
        await notifier.send(message())


async def test_smtp_sends_no_sms(smtp: SmtpServer) -> None:
    notifier = build_notifier(smtp_settings(smtp, smtp_starttls=False))
    with pytest.raises(NotifyUnavailable):
        await notifier.send(message("sms", "+8613800000001"))


# --- the SMS plug-in -----------------------------------------------------------------------------


class RecordingSms:
    """What an operator's plug-in looks like: `factory(settings)` → an object with `send`."""

    def __init__(self, settings: Settings, fail: bool = False) -> None:
        self.settings, self.fail = settings, fail
        self.sent: list[Message] = []

    async def send(self, message: Message) -> None:
        if self.fail:
            raise RuntimeError(f"gateway refused {message.text}")
        self.sent.append(message)


PLUGINS: list[RecordingSms] = []


def sms_factory(settings: Settings) -> RecordingSms:
    PLUGINS.append(RecordingSms(settings))
    return PLUGINS[-1]


def failing_factory(settings: Settings) -> RecordingSms:
    return RecordingSms(settings, fail=True)


def not_a_sender(settings: Settings) -> object:
    return object()


async def test_the_sms_plug_in_is_loaded_from_its_reference_and_given_the_settings() -> None:
    configured = settings(sms_sender="tests.test_notify:sms_factory", base_url="https://x.test")
    notifier = build_notifier(configured)
    assert notifier.can_send("sms") and not notifier.can_send("email")
    await notifier.send(message("sms", "+8613800000001"))
    plugin = PLUGINS[-1]
    assert plugin.settings is configured
    assert [m.secret for m in plugin.sent] == [CODE]


async def test_a_failing_plug_in_is_a_failure_whose_log_keeps_the_secret_out(
    capsys: pytest.CaptureFixture[str],
) -> None:
    notifier = build_notifier(settings(sms_sender="tests.test_notify:failing_factory"))
    with capture_logs() as logs, pytest.raises(NotifyFailed) as failed:
        await notifier.send(message("sms", "+8613800000001"))
    assert CODE not in str(failed.value)
    # Captured here, or printed once another test configured (and cached) the JSON logger.
    written = repr(logs) + capsys.readouterr().out
    assert "notify.failed" in written and CODE not in written


def test_a_plug_in_that_cannot_be_loaded_names_the_setting() -> None:
    for reference in (
        "tests.no_such_module:factory",
        "tests.test_notify:no_such_factory",
        "tests.test_notify:not_a_sender",
    ):
        with pytest.raises(NotifyConfigError, match="IDENTITY_SMS_SENDER"):
            build_notifier(settings(sms_sender=reference))
    with pytest.raises(ValidationError, match="package.module:factory"):
        settings(sms_sender="tests.test_notify")
