"""What the provider trusts about the member a request names: an `id_token_hint` (at authorize
and at end_session), only while the key that signed it is in force; a tenant hint, resolved
exactly as `/sso/login` resolves it. identity and the simulator as processes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from joserfc import jwt

from identity.simulator import sender as events
from tests.helpers.cli import run_cli
from tests.helpers.oidc_app import REDIRECT, App, authorize, tokens_for
from tests.helpers.simulator_world import APP_ID
from tests.helpers.stack import Browser, Stack
from tests.helpers.waiting import until


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

    # The JWKS asks whether its keys are still in force at most once a second.
    async def published() -> list[dict[str, str]]:
        return (await app.http.get(app.config["jwks_uri"])).json()["keys"]  # type: ignore[no-any-return]

    async def withdrawn() -> bool:
        return kid not in {key["kid"] for key in await published()}

    await until(withdrawn, "the revoked key leaves the JWKS", within=5)
    keys = await published()
    assert keys and kid not in {key["kid"] for key in keys}

    hint = {"id_token_hint": issued["id_token"], "state": "bye"}
    refused = await browser.http.get(app.config["end_session_endpoint"], params=hint)
    assert refused.status_code == 400 and "location" not in refused.headers
    assert (await browser.session()).status_code == 200  # nothing was ended

    again = await browser.http.get(
        app.config["authorization_endpoint"],
        params=_request(app, prompt="none", id_token_hint=issued["id_token"]),
    )
    query = _query(again.headers["location"])
    assert query["error"] == ["invalid_request"] and "code" not in query


async def test_a_tenant_hint_names_a_tenant_by_id_before_code(
    acme: Stack, app: App, browser: Browser
) -> None:
    """A signed tenantSync gives beta acme's tenant id as its tenantCode. `tenant=<acme's id>`
    still names acme (an id wins over any code, as at /sso/login), so a beta member's browser
    gets no code for it, even silently."""
    await acme.provision("beta")
    landed = await browser.flow_b("beta", "alice@beta", "beta-pw", app=APP_ID)
    assert landed.status_code == 200, landed.text
    acme_id, beta_id = acme.tenant("acme").tenant_id, acme.tenant("beta").tenant_id
    impostor = acme.tenant("beta").model_copy(update={"tenant_code": acme_id})
    await events.bind(acme.sender, impostor)

    async def silently(tenant: str) -> dict[str, list[str]]:
        answer = await browser.http.get(
            app.config["authorization_endpoint"],
            params=_request(app, prompt="none", tenant=tenant),
        )
        return _query(answer.headers["location"])

    mine = await silently(beta_id)
    assert "code" in mine and "error" not in mine
    refused = await silently(acme_id)
    assert refused["error"] == ["login_required"] and "code" not in refused


async def test_an_id_token_hint_naming_another_member_is_not_answered_from_this_session(
    acme: Stack, app: App, browser: Browser
) -> None:
    """OIDC Core §3.1.2.2: in alice's browser, a hint naming bob gets no code for alice. Silent
    (prompt=none): login_required. Otherwise: through the marketplace login, whose auth centre
    forgets alice first, so the person can sign in as bob; signing in as alice again ends in
    login_required, not in a loop."""
    own = await tokens_for(app, browser)  # alice
    other = acme.browser()
    try:
        bob = await tokens_for(app, other, account="bob@acme")
    finally:
        await other.close()
    endpoint = app.config["authorization_endpoint"]

    async def silently(hint: str) -> dict[str, list[str]]:
        answer = await browser.http.get(
            endpoint, params=_request(app, prompt="none", id_token_hint=hint)
        )
        return _query(answer.headers["location"])

    refused = await silently(bob["id_token"])
    assert refused["error"] == ["login_required"] and "code" not in refused
    assert refused["state"] == ["s"] and refused["iss"] == [acme.identity]
    assert "code" in await silently(own["id_token"])  # her own hint: answered at once
    bad = await silently(own["access_token"])  # not an ID token
    assert bad["error"] == ["invalid_request"]

    still_alice = await authorize(browser, app, account="alice@acme", id_token_hint=bob["id_token"])
    assert still_alice["error"] == "login_required" and "code" not in still_alice
    as_bob = await tokens_for(app, browser, account="bob@acme", id_token_hint=bob["id_token"])
    keys = await app.keys()
    subs = {
        jwt.decode(t["id_token"], keys, algorithms=["ES256"]).claims["sub"] for t in (as_bob, bob)
    }
    assert len(subs) == 1
