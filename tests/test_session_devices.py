"""What a session keeps of the browser that signed in (identity.sessions.devices): the browser
and platform in words from the user agent, parsed once and cached, cleaned and cut to their
columns; the client address as an IP address or nothing; and the schema revision that added the
columns, which upgrades and downgrades without touching the sessions' other data."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from pydantic import SecretStr
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from identity.db import async_url
from identity.migrate import alembic_config, upgrade
from identity.sessions.devices import (
    MAX_TEXT,
    MAX_USER_AGENT,
    Device,
    Seen,
    address,
    describe,
    device,
    shown,
)
from tests.helpers.marketplace_client import SECRET_KEY
from tests.helpers.servers import scratch_postgres

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)


@pytest.mark.parametrize(
    ("user_agent", "words"),
    [
        (CHROME_WINDOWS, ("Chrome 131", "Windows 10")),
        (SAFARI_IPHONE, ("Mobile Safari 17", "iOS 17.4")),
        (CHROME_ANDROID, ("Chrome Mobile 131", "Android 14")),
        ("curl/8.4.0", ("curl 8", None)),
        ("python-httpx/0.28.1", (None, None)),  # not recognised: nothing, not "Other"
        ("", (None, None)),
    ],
)
def test_a_user_agent_becomes_a_browser_and_a_platform_in_words(
    user_agent: str, words: tuple[str | None, str | None]
) -> None:
    seen = device("marketplace", Seen(user_agent, "198.51.100.7"))
    assert seen == Device("marketplace", *words, "198.51.100.7")


def test_a_user_agent_is_parsed_once_however_many_logins_send_it() -> None:
    describe.cache_clear()
    for _ in range(50):
        device("password", Seen(CHROME_ANDROID, None))
    info = describe.cache_info()
    assert (info.misses, info.hits) == (1, 49)


def test_a_long_user_agent_is_parsed_by_its_start_and_quickly() -> None:
    describe.cache_clear()
    started = time.perf_counter()
    long = device("marketplace", Seen(CHROME_WINDOWS + " x" * 50_000, None))
    assert time.perf_counter() - started < 1
    assert (long.browser, long.platform) == ("Chrome 131", "Windows 10")
    # Another that differs only past the first MAX_USER_AGENT characters is the same entry.
    device("marketplace", Seen(CHROME_WINDOWS + " x" * 50_000 + " y", None))
    assert (describe.cache_info().misses, describe.cache_info().hits) == (1, 1)
    assert len(CHROME_WINDOWS) < MAX_USER_AGENT


def test_what_is_shown_holds_no_control_character_and_fits_its_column() -> None:
    assert shown("Chrome\x00\u200b\x1f", "1\x7f31") == "Chrome 131"
    assert shown("Other", "1") is None  # ua-parser's "not recognised"
    assert shown("\x00\x01", None) is None
    assert len(shown("B" * 500, "1") or "") == MAX_TEXT


@pytest.mark.parametrize(
    ("host", "kept"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("::ffff:198.51.100.7", "198.51.100.7"),  # IPv4 through an IPv6 socket
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("testclient", None),  # not an address
        ("", None),
        (None, None),
    ],
)
def test_the_address_is_an_ip_address_or_nothing(host: str | None, kept: str | None) -> None:
    assert address(host) == kept


def test_without_a_request_only_the_method_is_known() -> None:
    assert device("password", None) == Device("password", None, None, None)


# --- the schema ----------------------------------------------------------------------------------


@pytest.fixture
def scratch_url(tmp_path: Path) -> Iterator[str]:
    """A database of its own: this test moves it between schema revisions."""
    server = os.environ.get("IDENTITY_TEST_DATABASE_URL")
    if not server:
        yield f"sqlite+aiosqlite:///{tmp_path / 'identity.db'}"
        return
    with scratch_postgres(server, "identity_devices") as url:
        yield url


SESSION = {
    "id_hash": "h" * 64,
    "sid": "sid-1",
    "tenant_id": "T1",
    "user_name": "bob",
    "created_at": datetime(2026, 12, 1, 9),
    "authenticated_at": datetime(2026, 12, 1, 9),
    "last_seen_at": datetime(2026, 12, 1, 9),
    "expires_at": datetime(2026, 12, 1, 9) + timedelta(hours=12),
}
COLUMNS = {"sign_in_method", "browser", "platform", "address"}


async def _columns_and_apps(url: str) -> tuple[set[str], list[str]]:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            columns = await conn.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("sessions")}
            )
            apps = (await conn.execute(text("SELECT app_id FROM session_apps"))).scalars()
            return columns, list(apps)
    finally:
        await engine.dispose()


async def _write(url: str, statement: str, **values: object) -> None:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement), values)
    finally:
        await engine.dispose()


async def test_revision_0012_adds_the_columns_and_goes_back_keeping_the_sessions(
    scratch_url: str,
) -> None:
    config = alembic_config(scratch_url, SecretStr(SECRET_KEY))
    await asyncio.to_thread(upgrade, scratch_url)
    await asyncio.to_thread(command.downgrade, config, "0011")
    names = ", ".join(SESSION)
    await _write(
        scratch_url,
        f"INSERT INTO sessions ({names}) VALUES ({', '.join(':' + n for n in SESSION)})",
        **SESSION,
    )
    await _write(
        scratch_url,
        "INSERT INTO session_apps (sid, app_id, created_at) VALUES ('sid-1', 'APP-1', :at)",
        at=SESSION["created_at"],
    )

    await asyncio.to_thread(command.upgrade, config, "0012")
    columns, apps = await _columns_and_apps(scratch_url)
    assert columns >= COLUMNS and apps == ["APP-1"]
    await _write(
        scratch_url,
        "UPDATE sessions SET sign_in_method = 'password', browser = :b, address = :a",
        b="Chrome 131",
        a="2001:db8::1",
    )

    await asyncio.to_thread(command.downgrade, config, "0011")
    columns, apps = await _columns_and_apps(scratch_url)
    assert not COLUMNS & columns and apps == ["APP-1"]  # the session and its app stay
    await asyncio.to_thread(command.upgrade, config, "head")
    columns, _ = await _columns_and_apps(scratch_url)
    assert columns >= COLUMNS
