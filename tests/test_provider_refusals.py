"""A member refused on the way to an app reaches the app again: the refusal page keeps its way
out and gains "return to the app", which sends the browser to the client's registered redirect
URI with `error=access_denied`, `state` and `iss` (RFC 6749 §4.1.2.1, RFC 9207); a silent
request (prompt=none) goes back at once. identity and the simulator as processes."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2 as httpx
import pytest

from identity.db import Database
from identity.provider import clients
from tests.helpers.oidc_app import REDIRECT, App, NotBack, authorize
from tests.helpers.stack import Browser, Stack, assert_refused


def _link(page: httpx.Response, element_id: str) -> str | None:
    found = re.search(rf'id="{element_id}" href="([^"]*)"', page.text)
    return html.unescape(found.group(1)) if found else None


async def _back_to_app(acme: Stack, browser: Browser, page: httpx.Response) -> dict[str, str]:
    """Press "return to the app": where the browser lands, as the app's query."""
    link = _link(page, "back-to-app")
    assert link is not None, page.text
    answer = await browser.http.get(acme.identity + link)
    assert answer.status_code in (302, 303), answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@pytest.mark.parametrize(
    ("account", "reason"),
    [("dave@acme", "member_unknown"), ("carol@acme", "member_disabled")],
    ids=["not-authorised", "disabled"],
)
async def test_a_member_refused_at_sign_in_can_return_to_the_app(
    acme: Stack, app: App, browser: Browser, account: str, reason: str
) -> None:
    with pytest.raises(NotBack) as stopped:
        await authorize(browser, app, account=account, state="st-9")
    page = stopped.value.response
    assert_refused(page, reason)
    assert _link(page, "switch") and _link(page, "home-link") == "/"  # the way out stays
    back = await _back_to_app(acme, browser, page)
    assert back["error"] == "access_denied" and back["state"] == "st-9"
    assert back["iss"] == acme.identity and "code" not in back


async def test_only_a_sign_in_an_app_asked_for_offers_the_way_back(
    acme: Stack, browser: Browser
) -> None:
    refused = await browser.flow_b("acme", "carol@acme", "carol-pw")
    assert_refused(refused, "member_disabled")
    assert _link(refused, "back-to-app") is None


async def test_a_member_whose_enterprise_lacks_the_app_goes_back_to_it(
    acme: Stack, db: Database, app: App, browser: Browser
) -> None:
    """acme never bought `other-app`: alice, signed in to the demo app, is refused for it. A
    silent request goes back at once; otherwise the refusal page offers the way back."""
    await authorize(browser, app)  # alice, signed in to the demo app
    async with db.transaction() as session:
        registration = clients.Registration(
            "other-app", "Other", [REDIRECT], [], None, None, public=False
        )
        added = await clients.add(session, registration)
        other_id = added.client_id
    request = {"client_id": other_id, "redirect_uri": REDIRECT, "response_type": "code",
               "scope": "openid", "state": "s2"}  # fmt: skip
    endpoint = acme.identity + "/oauth2/authorize"
    silent = await browser.http.get(endpoint, params=request | {"prompt": "none"})
    query = parse_qs(urlsplit(silent.headers["location"]).query)
    assert silent.headers["location"].startswith(REDIRECT + "?")
    assert query["error"] == ["access_denied"] and query["state"] == ["s2"]
    assert query["iss"] == [acme.identity]

    page = await browser.get(endpoint, params=request)
    assert_refused(page, "app_not_configured")
    back = await _back_to_app(acme, browser, page)
    assert back["error"] == "access_denied" and back["state"] == "s2"


async def test_the_way_back_goes_only_to_a_registered_redirect_uri(
    acme: Stack, app: App, browser: Browser
) -> None:
    request = {"client_id": app.client_id, "response_type": "code", "scope": "openid",
               "state": "s"}  # fmt: skip
    for where in ("https://evil.example/cb", REDIRECT + "/x"):
        query = urlencode(request | {"redirect_uri": where})
        page = await browser.http.get(f"{acme.identity}/oauth2/denied?{query}")
        assert page.status_code == 400 and "location" not in page.headers, where
