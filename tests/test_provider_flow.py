"""The OpenID Provider end to end: identity and the simulator as processes, a browser following
redirects, and the app's back end calling the token, userinfo, introspection and revocation
endpoints found through discovery. Every token is verified here with joserfc against the JWKS."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2 as httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from identity.db import Database
from identity.provider import clients
from identity.simulator import sender as events
from tests.simulator_world import APP_ID, login_form
from tests.stack import Browser, Stack

REDIRECT = "http://127.0.0.1:9/callback"  # never fetched: the test stops at it


@dataclass
class App:
    """The ISV app's back end: a confidential client."""

    client_id: str
    secret: str
    config: dict[str, Any]
    http: httpx.AsyncClient

    async def post(self, name: str, **form: str) -> httpx.Response:
        return await self.http.post(
            self.config[name], data=form, auth=(self.client_id, self.secret)
        )

    async def keys(self) -> KeySet:
        return KeySet.import_key_set((await self.http.get(self.config["jwks_uri"])).json())


@pytest.fixture
async def app(acme: Stack, db: Database) -> AsyncIterator[App]:
    registration = clients.Registration(
        app_id=APP_ID,
        name="Demo app",
        redirect_uris=[REDIRECT],
        post_logout_redirect_uris=[],
        backchannel_logout_uri=None,
        initiate_login_uri=None,
        public=False,
    )
    async with db.transaction() as session:
        client_id, secret = await clients.add(session, registration)
    assert secret is not None
    async with httpx.AsyncClient(timeout=30) as http:
        config = (await http.get(acme.identity + "/.well-known/openid-configuration")).json()
        yield App(client_id, secret, config, http)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def authorize(
    browser: Browser, app: App, *, account: str = "alice@acme", **params: str
) -> dict[str, str]:
    """The browser's trip: authorize → marketplace login → back to the app. The query the
    app's redirect URI receives."""
    query = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid profile email",
        "state": "st-1",
        "nonce": "n-1",
        "tenant": "acme",
        **params,
    }
    response = await browser.http.get(app.config["authorization_endpoint"], params=query)
    for _ in range(12):
        location = response.headers.get("location", "")
        if location.startswith(REDIRECT):
            return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        if response.status_code == 200 and login_form(response.text).action:
            password = account.split("@")[0] + "-pw"
            response = await browser.post_login(response, account, password)
            continue
        assert response.status_code in (302, 303), response.text
        response = await browser.http.get(urljoin(str(response.url), location))
    raise AssertionError("never got back to the app")


async def test_code_flow_with_pkce_gives_tokens_the_app_can_verify(
    acme: Stack, app: App, browser: Browser
) -> None:
    verifier, challenge = pkce()
    back = await authorize(browser, app, code_challenge=challenge, code_challenge_method="S256")
    assert back["state"] == "st-1" and back["iss"] == acme.identity
    answer = await app.post(
        "token_endpoint",
        grant_type="authorization_code",
        code=back["code"],
        redirect_uri=REDIRECT,
        code_verifier=verifier,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    issued = answer.json()
    keys = await app.keys()
    id_token = jwt.decode(issued["id_token"], keys, algorithms=["ES256"])
    claims = id_token.claims
    assert claims["iss"] == acme.identity and claims["aud"] == app.client_id
    assert claims["azp"] == app.client_id and claims["nonce"] == "n-1"
    assert claims["preferred_username"] == "alice" and claims["tenant_code"] == "acme"
    assert claims["role"] == "admin" and claims["email"] == "alice@acme.example.com"
    assert "alice" not in claims["sub"] and "acme" not in claims["sub"]
    access = jwt.decode(issued["access_token"], keys, algorithms=["ES256"])
    assert access.header["typ"] == "at+jwt" and access.header["kid"] == id_token.header["kid"]
    assert access.claims["client_id"] == app.client_id and access.claims["sid"] == claims["sid"]
    assert issued["expires_in"] == 600

    info = await app.http.get(
        app.config["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {issued['access_token']}"},
    )
    assert info.status_code == 200 and info.json()["sub"] == claims["sub"]
    seen = await app.post("introspection_endpoint", token=issued["access_token"])
    assert seen.json()["active"] is True and seen.json()["sub"] == claims["sub"]


async def test_a_second_login_gives_the_same_sub_and_a_code_works_once(
    app: App, browser: Browser
) -> None:
    first = await authorize(browser, app)
    tokens = await app.post(
        "token_endpoint", grant_type="authorization_code", code=first["code"],
        redirect_uri=REDIRECT,
    )  # fmt: skip
    assert tokens.status_code == 200, tokens.text
    again = await app.post(
        "token_endpoint", grant_type="authorization_code", code=first["code"],
        redirect_uri=REDIRECT,
    )  # fmt: skip
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    # The reused code revoked what it had given.
    seen = await app.post("introspection_endpoint", token=tokens.json()["access_token"])
    assert seen.json() == {"active": False}
    second = await authorize(browser, app)  # signed in already: no login form this time
    tokens2 = await app.post(
        "token_endpoint", grant_type="authorization_code", code=second["code"],
        redirect_uri=REDIRECT,
    )  # fmt: skip
    keys = await app.keys()
    sub1 = jwt.decode(tokens.json()["id_token"], keys, algorithms=["ES256"]).claims["sub"]
    sub2 = jwt.decode(tokens2.json()["id_token"], keys, algorithms=["ES256"]).claims["sub"]
    assert sub1 == sub2


async def test_refresh_rotates_and_reuse_revokes_the_family(app: App, browser: Browser) -> None:
    back = await authorize(browser, app)
    first = (
        await app.post(
            "token_endpoint", grant_type="authorization_code", code=back["code"],
            redirect_uri=REDIRECT,
        )
    ).json()  # fmt: skip
    rotated = await app.post(
        "token_endpoint", grant_type="refresh_token", refresh_token=first["refresh_token"]
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["refresh_token"] != first["refresh_token"]
    reused = await app.post(
        "token_endpoint", grant_type="refresh_token", refresh_token=first["refresh_token"]
    )
    assert reused.json()["error"] == "invalid_grant"
    newest = await app.post(
        "token_endpoint", grant_type="refresh_token", refresh_token=rotated.json()["refresh_token"]
    )
    assert newest.json()["error"] == "invalid_grant"  # the whole family is revoked


async def test_disabling_the_member_ends_their_tokens_at_once(
    acme: Stack, app: App, browser: Browser
) -> None:
    back = await authorize(browser, app)
    issued = (
        await app.post(
            "token_endpoint", grant_type="authorization_code", code=back["code"],
            redirect_uri=REDIRECT,
        )
    ).json()  # fmt: skip
    assert (await app.post("introspection_endpoint", token=issued["access_token"])).json()[
        "active"
    ]
    await events.disable_member(acme.sender, acme.tenant("acme"), "alice")
    for token in (issued["access_token"], issued["refresh_token"]):
        seen = await app.post("introspection_endpoint", token=token)
        assert seen.json() == {"active": False}
    info = await app.http.get(
        app.config["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {issued['access_token']}"},
    )
    assert info.status_code == 401
    refreshed = await app.post(
        "token_endpoint", grant_type="refresh_token", refresh_token=issued["refresh_token"]
    )
    assert refreshed.json()["error"] == "invalid_grant"


async def test_refusals(acme: Stack, app: App, browser: Browser) -> None:
    endpoint = app.config["authorization_endpoint"]
    unknown = await browser.http.get(
        endpoint, params={"client_id": "nope", "redirect_uri": REDIRECT}
    )
    assert unknown.status_code == 400 and "location" not in unknown.headers
    mismatch = await browser.http.get(
        endpoint, params={"client_id": app.client_id, "redirect_uri": REDIRECT + "x"}
    )
    assert mismatch.status_code == 400 and "location" not in mismatch.headers
    plain = await browser.http.get(
        endpoint,
        params={"client_id": app.client_id, "redirect_uri": REDIRECT, "response_type": "code",
                "scope": "openid", "state": "s", "code_challenge": "abc",
                "code_challenge_method": "plain"},
    )  # fmt: skip
    assert parse_qs(urlsplit(plain.headers["location"]).query)["error"] == ["invalid_request"]
    silent = await browser.http.get(
        endpoint,
        params={"client_id": app.client_id, "redirect_uri": REDIRECT, "response_type": "code",
                "scope": "openid", "state": "s", "prompt": "none"},
    )  # fmt: skip
    query = parse_qs(urlsplit(silent.headers["location"]).query)
    assert query["error"] == ["login_required"] and query["state"] == ["s"]

    verifier, challenge = pkce()
    back = await authorize(browser, app, code_challenge=challenge, code_challenge_method="S256")
    wrong = await app.post(
        "token_endpoint", grant_type="authorization_code", code=back["code"],
        redirect_uri=REDIRECT, code_verifier=verifier + "x",
    )  # fmt: skip
    assert wrong.json()["error"] == "invalid_grant"
    bad_secret = await app.http.post(
        app.config["token_endpoint"],
        data={"grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT},
        auth=(app.client_id, "wrong"),
    )
    assert bad_secret.status_code == 401 and bad_secret.json()["error"] == "invalid_client"
