"""What the provider trusts about the member a request names: an `id_token_hint` (at authorize
and at end_session), only while the key that signed it is in force; a tenant hint, resolved
exactly as `/sso/login` resolves it. identity and the simulator as processes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from joserfc import jwt

from tests.stack import Browser, Stack
from tests.test_cli import run_cli
from tests.test_provider_flow import REDIRECT, App, app, tokens_for

__all__ = ["app"]  # the confidential client fixture


def _query(location: str) -> dict[str, list[str]]:
    assert location.startswith(REDIRECT), location
    return parse_qs(urlsplit(location).query)


def _request(app: App, **params: str) -> dict[str, str]:
    return {"client_id": app.client_id, "redirect_uri": REDIRECT, "response_type": "code",
            "scope": "openid", "state": "s", **params}  # fmt: skip


async def test_a_revoked_key_leaves_the_jwks_at_once_and_its_id_tokens_are_no_hints(
    acme: Stack, app: App, browser: Browser, database_url: str, tmp_path: Path
) -> None:
    """`identity keys revoke` runs in its own process: the serving process must not keep
    publishing the key, or trust ID tokens it signed, until it next reads the keys."""
    issued = await tokens_for(app, browser)
    jwks = await app.http.get(app.config["jwks_uri"])
    assert jwks.headers["cache-control"] == "public, max-age=30"
    kid = jwt.decode(issued["id_token"], await app.keys(), algorithms=["ES256"]).header["kid"]
    assert kid in {key["kid"] for key in jwks.json()["keys"]}

    done = run_cli(database_url, tmp_path, "keys", "revoke", kid)
    assert done.returncode == 0, done.stderr
    published = (await app.http.get(app.config["jwks_uri"])).json()["keys"]
    assert published and kid not in {key["kid"] for key in published}

    hint = {"id_token_hint": issued["id_token"], "state": "bye"}
    refused = await browser.http.get(app.config["end_session_endpoint"], params=hint)
    assert refused.status_code == 400 and "location" not in refused.headers
    assert (await browser.session()).status_code == 200  # nothing was ended
