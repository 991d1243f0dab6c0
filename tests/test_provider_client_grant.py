"""The client-credentials grant for an app's backend reading the directory: who may use it,
what the token says, and what ends it. identity as a process; the operator's side through the
`identity clients` commands."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from joserfc import jwt
from standardwebhooks import Webhook

from identity.crypto import Cipher
from identity.db import Database, utcnow
from identity.models import OidcClient
from identity.provider import clients
from tests.helpers.cli import cli_json, run_cli
from tests.helpers.marketplace_client import SECRET_KEY
from tests.helpers.oidc_app import App, directory_reader
from tests.helpers.stack import Stack


async def _directory_app(acme: Stack, db: Database, http: httpx.AsyncClient) -> App:
    added = await directory_reader(db)
    assert added.secret is not None
    config = (await http.get(acme.identity + "/.well-known/openid-configuration")).json()
    return App(added.client_id, added.secret, config, http)


def _claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, body, _ = token.split(".")
    return _part(head), _part(body)


def _part(part: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


async def test_a_directory_client_gets_a_token_for_itself_and_nothing_more(
    acme: Stack, db: Database, app: App
) -> None:
    reader = await _directory_app(acme, db, app.http)
    assert "client_credentials" in reader.config["grant_types_supported"]
    assert clients.DIRECTORY_SCOPE in reader.config["scopes_supported"]
    answer = await reader.post("token_endpoint", grant_type="client_credentials")
    assert answer.status_code == 200, answer.text
    issued = answer.json()
    assert issued["scope"] == "directory.read" and issued["token_type"] == "Bearer"
    assert "refresh_token" not in issued and "id_token" not in issued
    header, claims = _claims(issued["access_token"])
    assert header["typ"] == "at+jwt"
    assert claims["sub"] == claims["client_id"] == reader.client_id
    assert claims["aud"] == acme.identity + "/scim/v2"
    token = jwt.decode(issued["access_token"], await reader.keys())  # signed by a published key
    assert token.claims["iss"] == acme.identity

    looked = await reader.post("introspection_endpoint", token=issued["access_token"])
    assert looked.json()["active"] is True and looked.json()["sub"] == reader.client_id
    other = await app.post("introspection_endpoint", token=issued["access_token"])
    assert other.json() == {"active": False}  # another client's token is not its business
    userinfo = await app.http.get(
        reader.config["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {issued['access_token']}"},
    )
    assert userinfo.status_code == 401  # no member behind it

    revoked = await reader.post("revocation_endpoint", token=issued["access_token"])
    assert revoked.status_code == 400 and revoked.json()["error"] == "unsupported_token_type"


@pytest.mark.parametrize(
    ("scope", "error"),
    [("directory.read", "invalid_scope"), ("directory.write", "invalid_scope"),
     (None, "unauthorized_client")],
    ids=["not-granted", "unknown", "nothing-to-grant"],
)  # fmt: skip
async def test_a_client_without_the_directory_scope_is_refused(
    app: App, scope: str | None, error: str
) -> None:
    form = {"grant_type": "client_credentials"} | ({"scope": scope} if scope else {})
    answer = await app.post("token_endpoint", **form)
    assert answer.status_code == 400 and answer.json()["error"] == error, answer.text


async def test_a_directory_client_asking_for_more_than_it_holds_is_refused(
    acme: Stack, db: Database, app: App
) -> None:
    reader = await _directory_app(acme, db, app.http)
    answer = await reader.post(
        "token_endpoint", grant_type="client_credentials", scope="directory.read openid"
    )
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_scope"


async def test_a_new_secret_ends_the_tokens_got_with_the_old_one(
    acme: Stack, db: Database, app: App
) -> None:
    reader = await _directory_app(acme, db, app.http)
    token = (await reader.post("token_endpoint", grant_type="client_credentials")).json()
    async with db.transaction() as session:
        secret = await clients.rotate_secret(session, reader.client_id)
    assert secret is not None
    reader.secret = secret
    looked = await reader.post("introspection_endpoint", token=token["access_token"])
    assert looked.status_code == 200 and looked.json() == {"active": False}
    fresh = (await reader.post("token_endpoint", grant_type="client_credentials")).json()
    looked = await reader.post("introspection_endpoint", token=fresh["access_token"])
    assert looked.json()["active"] is True


@pytest.mark.parametrize(
    ("change", "message"),
    [({"public": True}, "confidential client"),
     ({"scopes": [], "events_uri": "https://app.example.com/events"}, "needs the directory.read"),
     ({"scopes": ["directory.write"]}, "unknown scope"),
     ({"scopes": [], "redirect_uris": []}, "at least one redirect URI"),
     ({"events_uri": "http://app.example.com/events"}, "must use https")],
    ids=["public", "events-without-directory", "unknown-scope", "no-redirect", "http-events"],
)  # fmt: skip
async def test_a_registration_that_cannot_work_is_refused(
    db: Database, change: dict[str, Any], message: str
) -> None:
    fields: dict[str, Any] = {
        "app_id": "a", "name": "n", "redirect_uris": [], "post_logout_redirect_uris": [],
        "backchannel_logout_uri": None, "initiate_login_uri": None, "public": False,
        "scopes": [clients.DIRECTORY_SCOPE],
    } | change  # fmt: skip
    async with db.transaction() as session:
        with pytest.raises(clients.ClientError, match=message):
            await clients.add(session, clients.Registration(**fields))


async def test_the_operator_registers_an_events_receiver_and_rotates_its_secret(
    database_url: str, tmp_path: Path, db: Database
) -> None:
    added = cli_json(
        database_url, tmp_path, "clients", "add", "--app", "a", "--name", "Reader",
        "--directory", "--events-uri", "http://127.0.0.1:9/events",
    )  # fmt: skip
    first = added["events_secret"]
    assert first.startswith("whsec_") and Webhook(first)  # a secret the library takes
    shown = cli_json(database_url, tmp_path, "clients", "show", added["client_id"])
    assert shown["scopes"] == ["directory.read"]
    assert shown["events_uri"] == "http://127.0.0.1:9/events"
    assert first not in json.dumps(shown) and added["client_secret"] not in json.dumps(shown)

    rotated = cli_json(
        database_url, tmp_path, "clients", "rotate-events-secret", added["client_id"]
    )
    assert rotated["events_secret"].startswith("whsec_") and rotated["events_secret"] != first
    shown = cli_json(database_url, tmp_path, "clients", "show", added["client_id"])
    assert shown["events_secret_rotating_until"] is not None
    later = utcnow() + timedelta(hours=25)
    async with db.read() as session:
        client = await session.get(OidcClient, added["client_id"])
        assert client is not None  # both sign until the overlap ends, the new one first
        in_force = clients.events_secrets(Cipher(SECRET_KEY), client, utcnow())
        after = clients.events_secrets(Cipher(SECRET_KEY), client, later)
    assert in_force == [rotated["events_secret"], first]
    assert after == [rotated["events_secret"]]

    refused = run_cli(database_url, tmp_path, "clients", "add", "--app", "a", "--name", "x",
                      "--events-uri", "https://app.example.com/e")  # fmt: skip
    assert refused.returncode == 2 and "directory.read" in refused.stderr
