"""Tenant hosts (`IDENTITY_TENANT_DOMAIN`): `{tenantCode}.apps.example.com` sends a browser into
the sign-in of that enterprise on the base URL, without the enterprise-code form; in the demo,
in Chromium, `http://acme.localhost:PORT/` ends with the member signed in."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect
from pydantic import ValidationError

from identity.settings import Settings
from tests.helpers.auth_centres import identity_with
from tests.helpers.chromium import (
    VIEWPORTS,
    chromium_page,
    needs_chromium,
    shooter,
    sign_in_at_auth_centre,
)

DOMAIN = "*.apps.example.com"
BASE = "https://identity.example.com"


def _query(location: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(location).query, keep_blank_values=True)


async def test_a_tenant_host_starts_that_enterprises_sign_in_on_the_base_url(
    settings: Settings,
) -> None:
    async with identity_with(settings, tenant_domain=DOMAIN) as identity:
        home = await identity.get("https://acme.apps.example.com/")
        page = await identity.get("https://ACME.apps.example.com:8443/admin/members?q=王")
        doubled = await identity.get("https://acme.apps.example.com//evil.example/")
        cookies = home.headers.get_list("set-cookie") + page.headers.get_list("set-cookie")
    assert home.status_code == 302
    assert home.headers["location"] == f"{BASE}/sso/login?tenant=acme"
    assert page.status_code == 302
    assert page.headers["location"].startswith(f"{BASE}/sso/login?")
    assert _query(page.headers["location"]) == {
        "tenant": ["acme"],
        "next": ["/admin/members?q=%E7%8E%8B"],
    }
    assert _query(doubled.headers["location"])["next"] == ["/evil.example/"]
    assert cookies == []  # a tenant host never sets one: the session lives on the base URL


async def test_authorize_on_a_tenant_host_takes_the_tenant_from_the_host(
    settings: Settings,
) -> None:
    async with identity_with(settings, tenant_domain=DOMAIN) as identity:
        answer = await identity.get(
            "https://acme.apps.example.com/oauth2/authorize",
            params={"client_id": "c1", "scope": "openid", "tenant": "other", "state": "s"},
        )
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(f"{BASE}/oauth2/authorize?")  # one issuer: the base URL
    assert _query(location) == {
        "client_id": ["c1"],
        "scope": ["openid"],
        "state": ["s"],
        "tenant": ["acme"],
    }


async def test_other_hosts_and_requests_are_not_tenant_hosts(settings: Settings) -> None:
    async with identity_with(settings, tenant_domain=DOMAIN) as identity:
        base = await identity.get(f"{BASE}/", headers={"accept": "text/html"})
        deeper = await identity.get("https://a.b.apps.example.com/")
        bare = await identity.get("https://apps.example.com/")
        probe = await identity.get("https://acme.apps.example.com/healthz")
        posted = await identity.post("https://acme.apps.example.com/produceAPI/v2/authSync")
    assert base.status_code == 200 and "text/html" in base.headers["content-type"]
    assert deeper.status_code != 302 and bare.status_code != 302
    assert probe.status_code == 200
    assert posted.status_code == 404
    assert posted.json()["error"] == "not_found"


async def test_without_the_setting_no_host_is_a_tenant_host(settings: Settings) -> None:
    async with identity_with(settings) as identity:
        answer = await identity.get("https://acme.apps.example.com/", headers={"accept": "*/*"})
    assert answer.status_code == 200


@pytest.mark.parametrize(
    "value", ["apps.example.com", "*.com", "*.apps.example.com/x", "https://*.a.example", "*"]
)
def test_a_tenant_domain_that_is_not_a_wildcard_of_a_domain_is_refused(
    settings: Settings, value: str
) -> None:
    with pytest.raises(ValidationError, match="tenant_domain"):
        Settings(**{**settings.model_dump(), "tenant_domain": value})


@needs_chromium
@pytest.mark.parametrize("viewport", VIEWPORTS, ids=list(VIEWPORTS))
def test_a_member_opens_their_enterprises_host_and_is_signed_in(
    demo: dict[str, str], viewport: str, tmp_path: Path
) -> None:
    shot = shooter(tmp_path, viewport)
    account, password = demo["account"], demo["password"]
    with chromium_page(viewport) as page:
        page.goto(demo["tenant_host"])
        # Straight to the enterprise's auth centre: no enterprise-code form on the way.
        expect(page.locator("input[name=username]")).to_be_visible()
        sign_in_at_auth_centre(page, account, password)
        expect(page).to_have_url(re.compile(re.escape(demo["identity"]) + r"/sso/me"))
        expect(page.locator("body")).to_contain_text(account.split("@")[0])
        shot(page, "tenant-host-signed-in")
        # An unknown enterprise's host: the refusal page, with a way out.
        page.goto(demo["tenant_host"].replace("://acme.", "://nosuchcompany."))
        expect(page.locator("#home-link")).to_be_visible()
        shot(page, "tenant-host-unknown")
        page.goto(demo["identity"] + "/sso/logout")
        page.get_by_role("button", name=re.compile("Sign out")).click()
