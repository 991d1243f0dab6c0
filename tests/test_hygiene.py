"""Defaults and hygiene, over ASGI: security headers on every response, who may read
`/metrics`, what `/openapi.json` publishes, key rules, and the SQLite file's mode."""

from __future__ import annotations

import re
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2 as httpx
import pytest
from pydantic import SecretStr, ValidationError

from identity.app import create_app
from identity.db import Database
from identity.migrate import upgrade
from identity.settings import Settings
from tests.helpers.marketplace_client import BASIC_KEY, KIT_KEY, SECRET_KEY
from tests.helpers.servers import METRICS_AUTH, METRICS_TOKEN


@asynccontextmanager
async def client_for(
    settings: Settings, *, raise_app_exceptions: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    async with httpx.AsyncClient(transport=transport, base_url=settings.base_url) as client:
        yield client
    await app.state.db.dispose()


def directives(response: httpx.Response) -> dict[str, list[str]]:
    policies = response.headers.get_list("content-security-policy")
    assert len(policies) == 1, policies
    parsed = [d.split() for d in policies[0].split(";") if d.strip()]
    return {words[0]: words[1:] for words in parsed}


def assert_secured(response: httpx.Response, *, hsts: bool = True) -> None:
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["x-frame-options"] == "DENY"
    policy = directives(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert "'unsafe-inline'" not in policy.get("style-src", [])
    assert headers.get("strict-transport-security") == ("max-age=31536000" if hsts else None)


# --- security headers -------------------------------------------------------------------------


async def test_every_kind_of_response_carries_the_security_headers(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/sso/login")  # the enterprise-code page
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    session = await client.get("/sso/session")
    assert session.status_code == 401
    health = await client.get("/healthz")
    marketplace = await client.post("/koogallery", content=b"{}")
    assert marketplace.status_code == 200 and "resultCode" in marketplace.json()
    missing = await client.get("/no/such/path")
    assert missing.status_code == 404
    for response in (page, session, health, marketplace, missing):
        assert_secured(response)


async def test_pages_carry_no_inline_style_and_their_stylesheet_is_served(
    client: httpx.AsyncClient,
) -> None:
    """The policy allows styles from this origin only: a page's look comes from the one
    stylesheet, which must be there (a page without it looks broken, not secure)."""
    page = await client.get("/sso/login")
    assert "<style" not in page.text and " style=" not in page.text
    assert directives(page).get("style-src") is None  # default-src 'self' applies
    href = re.search(r'<link rel="stylesheet" href="([^"]+)">', page.text)
    assert href and href.group(1).startswith("/static/identity.css?v=")
    sheet = await client.get(href.group(1))
    assert sheet.status_code == 200 and "text/css" in sheet.headers["content-type"]
    assert ".card" in sheet.text
    assert_secured(sheet)


async def test_no_hsts_when_the_base_url_is_plain_http(settings: Settings, db: Database) -> None:
    plain = settings.model_copy(update={"base_url": "http://127.0.0.1:8000"})
    async with client_for(plain) as client:
        assert_secured(await client.get("/healthz"), hsts=False)


async def test_an_internal_error_carries_the_security_headers(settings: Settings) -> None:
    down = settings.model_copy(
        update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/x"}
    )
    async with client_for(down, raise_app_exceptions=False) as client:
        client.cookies.set("__Host-identity_session", "some-session")
        failed = await client.get("/sso/session")
    assert failed.status_code == 503  # the database is down: the app's last-resort handler
    assert_secured(failed)


# --- /metrics ---------------------------------------------------------------------------------


async def test_metrics_are_not_exposed_without_a_token(settings: Settings, db: Database) -> None:
    async with client_for(settings.model_copy(update={"metrics_token": None})) as client:
        assert (await client.get("/metrics")).status_code == 404
        assert (await client.get("/metrics", headers=METRICS_AUTH)).status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token-0123456789abc",
        f"Basic {METRICS_TOKEN}",
        f"Bearer {METRICS_TOKEN}x",
    ],
)
async def test_metrics_need_the_bearer_token(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    refused = await client.get("/metrics", headers=headers)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert "identity_" not in refused.text


async def test_metrics_answer_the_bearer_token(client: httpx.AsyncClient) -> None:
    scraped = await client.get("/metrics", headers={"Authorization": f"bearer {METRICS_TOKEN}"})
    assert scraped.status_code == 200
    assert "identity_sso_logins_total" in scraped.text


# --- /openapi.json ----------------------------------------------------------------------------


async def test_openapi_lists_only_what_front_ends_call(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert set(schema["paths"]) == {
        "/sso/session",
        "/api/admin/members",
        "/api/admin/members/{user_name}",
        "/api/admin/members/{user_name}/end-sessions",
        "/api/admin/members/{user_name}/password-resets",
        "/api/admin/password-resets/{reset_id}/confirm",
        "/api/admin/departments",
        "/api/admin/syncs",
    }


# --- keys -------------------------------------------------------------------------------------

LONG = "a-long-enough-key-0123456789"


def settings_with(**keys: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        **{name: SecretStr(value) for name, value in keys.items()},
    )


def test_the_test_keys_are_valid() -> None:
    settings_with(
        secret_key=SECRET_KEY,
        marketplace_basic_key=BASIC_KEY,
        marketplace_kit_key=KIT_KEY,
        metrics_token=METRICS_TOKEN,
    )


@pytest.mark.parametrize(
    "field",
    [
        "secret_key",
        "marketplace_basic_key",
        "marketplace_basic_key_previous",
        "marketplace_kit_key",
        "marketplace_kit_key_previous",
        "metrics_token",
    ],
)
def test_a_key_under_16_characters_is_refused(field: str) -> None:
    settings_with(**{field: "x" * 16})
    with pytest.raises(ValidationError) as refused:
        settings_with(**{field: "x" * 15})
    assert f"IDENTITY_{field.upper()} must be at least 16 characters" in str(refused.value)
    assert "x" * 15 not in str(refused.value)  # the error never shows the key


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("marketplace_basic_key", "marketplace_kit_key"),
        ("marketplace_basic_key_previous", "marketplace_kit_key"),
        ("marketplace_basic_key", "marketplace_kit_key_previous"),
        ("secret_key", "marketplace_kit_key"),
        ("secret_key", "metrics_token"),
    ],
)
def test_keys_of_different_kinds_must_differ(first: str, second: str) -> None:
    with pytest.raises(ValidationError) as refused:
        settings_with(**{first: LONG, second: LONG})
    assert f"IDENTITY_{first.upper()} and IDENTITY_{second.upper()} must differ" in str(
        refused.value
    )
    assert LONG not in str(refused.value)


def test_unset_or_empty_marketplace_keys_are_allowed() -> None:
    settings_with(marketplace_basic_key=LONG)
    settings_with(marketplace_basic_key=LONG, marketplace_kit_key="", metrics_token="")
    settings_with(marketplace_kit_key=LONG, marketplace_kit_key_previous=LONG)  # mid-rotation


# --- file modes -------------------------------------------------------------------------------


def test_migrate_creates_the_sqlite_file_private(tmp_path: Path) -> None:
    path = tmp_path / "identity.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
