"""The ISV app's back end as the provider tests play it: a confidential client registered with
identity, the browser's trip through authorize and the marketplace login back to the app's
redirect URI, PKCE, and the code exchanged for tokens."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2 as httpx
from joserfc.jwk import KeySet

from identity.db import Database
from identity.provider import clients
from tests.helpers.simulator_world import APP_ID, login_form
from tests.helpers.stack import Browser, Stack

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


POST_LOGOUT = "http://127.0.0.1:9/signed-out"
INITIATE = "http://127.0.0.1:9/initiate"


async def register(stack: Stack, db: Database, http: httpx.AsyncClient, **extra: Any) -> App:
    registration = clients.Registration(
        app_id=APP_ID,
        name="Demo app",
        redirect_uris=[REDIRECT],
        post_logout_redirect_uris=extra.pop("post_logout_redirect_uris", []),
        backchannel_logout_uri=extra.pop("backchannel_logout_uri", None),
        initiate_login_uri=extra.pop("initiate_login_uri", None),
        public=False,
    )
    async with db.transaction() as session:
        added = await clients.add(session, registration)
        client_id, secret = added.client_id, added.secret
    assert secret is not None
    config = (await http.get(stack.identity + "/.well-known/openid-configuration")).json()
    return App(client_id, secret, config, http)


class NotBack(AssertionError):
    """The browser's trip ended on a page of identity's instead of at the app."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.text)
        self.response = response


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
        if response.status_code not in (302, 303):
            raise NotBack(response)
        response = await browser.http.get(urljoin(str(response.url), location))
    raise AssertionError("never got back to the app")


async def tokens_for(app: App, browser: Browser, **params: str) -> dict[str, str]:
    back = await authorize(browser, app, **params)
    answer = await app.post(
        "token_endpoint", grant_type="authorization_code", code=back["code"],
        redirect_uri=REDIRECT,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def directory_reader(db: Database, name: str = "Directory reader") -> clients.Added:
    """An app's backend registered with `directory.read` for the demo app, no redirect URI."""
    registration = clients.Registration(
        app_id=APP_ID, name=name, redirect_uris=[], post_logout_redirect_uris=[],
        backchannel_logout_uri=None, initiate_login_uri=None, public=False,
        scopes=[clients.DIRECTORY_SCOPE],
    )  # fmt: skip
    async with db.transaction() as session:
        added = await clients.add(session, registration)
    assert added.secret is not None
    return added
