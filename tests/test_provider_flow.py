"""The OpenID Provider end to end: identity and the simulator as processes, a browser following
redirects, and the app's back end calling the token, userinfo, introspection and revocation
endpoints found through discovery. Every token is verified here with joserfc against the JWKS."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2 as httpx
import pytest
from joserfc import jwt
from sqlalchemy import update

from identity.db import Database, utcnow
from identity.models import MemberSession, OidcCode, SigningKey
from identity.provider import clients
from identity.simulator import sender as events
from identity.simulator.scenario import TenantSpec
from identity.simulator.sender import KooGallery
from tests.helpers.oidc_app import (
    INITIATE,
    POST_LOGOUT,
    REDIRECT,
    App,
    NotBack,
    authorize,
    pkce,
    register,
    tokens_for,
)
from tests.helpers.simulator_world import APP_ID, login_form
from tests.helpers.stack import Browser, Stack, assert_refused


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


async def test_one_refresh_token_sent_five_times_at_once_is_spent_once_and_ends_its_grant(
    app: App, browser: Browser
) -> None:
    """A client racing itself: one request gets new tokens, the others are reuse, which ends
    the grant, the winner's new refresh token with it."""
    first = await tokens_for(app, browser)
    answers = await asyncio.gather(
        *(
            app.post("token_endpoint", grant_type="refresh_token",
                     refresh_token=first["refresh_token"])
            for _ in range(5)
        )
    )  # fmt: skip
    won = [a for a in answers if a.status_code == 200]
    assert len(won) == 1, [a.text for a in answers]
    assert all(a.json()["error"] == "invalid_grant" for a in answers if a is not won[0])
    newest = await app.post(
        "token_endpoint", grant_type="refresh_token", refresh_token=won[0].json()["refresh_token"]
    )
    assert newest.json()["error"] == "invalid_grant"
    seen = await app.post("introspection_endpoint", token=won[0].json()["access_token"])
    assert seen.json() == {"active": False}


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
    assert (await app.post("introspection_endpoint", token=issued["access_token"])).json()["active"]
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


async def test_rp_initiated_logout_ends_the_session_here_and_at_the_auth_centre(
    acme: Stack, app: App, browser: Browser
) -> None:
    issued = await tokens_for(app, browser)
    endpoint = app.config["end_session_endpoint"]
    stray = await browser.http.get(
        endpoint,
        params={"id_token_hint": issued["id_token"], "post_logout_redirect_uri": REDIRECT},
    )
    assert stray.status_code == 400 and "location" not in stray.headers
    assert (await browser.session()).status_code == 200  # a refused request ended nothing

    ended = await browser.http.get(
        endpoint,
        params={"id_token_hint": issued["id_token"], "post_logout_redirect_uri": POST_LOGOUT,
                "state": "bye"},
    )  # fmt: skip
    assert ended.status_code == 303
    location = ended.headers["location"]
    assert location.startswith(acme.sim + "/api/v1/logout?")  # the marketplace session too
    back = parse_qs(urlsplit(location).query)["redirect_url"][0]
    assert back == POST_LOGOUT + "?state=bye"
    assert (await browser.session()).status_code == 401
    seen = await app.post("introspection_endpoint", token=issued["refresh_token"])
    assert seen.json() == {"active": False}


async def test_a_platform_initiated_login_lands_on_the_apps_initiate_login_uri(
    acme: Stack, db: Database, browser: Browser
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        app = await register(acme, db, http, initiate_login_uri=INITIATE)
        callback = await browser.code_for("bob@acme", "bob-pw")  # the unified login (Flow A)
        landed = await browser.http.get(f"{acme.identity}/sso/callback/{APP_ID}", params=callback)
        assert landed.status_code == 303
        location = landed.headers["location"]
        assert location.startswith(INITIATE + "?")
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert query == {
            "iss": acme.identity,
            "login_hint": "bob@acme",
            "target_link_uri": "http://127.0.0.1:9/",
        }
        # The app starts its own request with the hint: the member is signed in already.
        back = await authorize(browser, app, login_hint=query["login_hint"], tenant="")
        assert "code" in back


Event = Callable[[KooGallery, TenantSpec, str], Awaitable[object]]


@pytest.mark.parametrize(
    "event",
    [events.cancel_authorisation, events.delete_member, events.disable_member],
    ids=["authorisation-cancelled", "member-deleted", "member-disabled"],
)
async def test_every_end_of_access_ends_the_tokens_at_once(
    acme: Stack, app: App, browser: Browser, event: Event
) -> None:
    issued = await tokens_for(app, browser, account="bob@acme")
    await event(acme.sender, acme.tenant("acme"), "bob")
    for token in (issued["access_token"], issued["refresh_token"]):
        assert (await app.post("introspection_endpoint", token=token)).json() == {"active": False}


async def test_freezing_the_instance_removing_the_client_or_revoking_the_key_ends_tokens(
    acme: Stack, db: Database, app: App, browser: Browser
) -> None:
    frozen = await tokens_for(app, browser)
    await events.freeze(acme.sender, acme.tenant("acme"))
    seen = await app.post("introspection_endpoint", token=frozen["access_token"])
    assert seen.json() == {"active": False}
    await events.unfreeze(acme.sender, acme.tenant("acme"))

    async with httpx.AsyncClient(timeout=30) as http:
        other = await register(acme, db, http)
        issued = await tokens_for(other, browser)
        async with db.transaction() as session:
            await clients.remove(session, other.client_id)
        seen = await app.post("introspection_endpoint", token=issued["access_token"])
        assert seen.json() == {"active": False}

    issued = await tokens_for(app, browser)
    kid = jwt.decode(issued["access_token"], await app.keys(), algorithms=["ES256"]).header["kid"]
    async with db.transaction() as session:
        await session.execute(
            update(SigningKey).where(SigningKey.kid == kid).values(revoked_at=utcnow())
        )
    seen = await app.post("introspection_endpoint", token=issued["access_token"])
    assert seen.json() == {"active": False}


async def test_a_token_of_one_client_is_inactive_to_another(
    acme: Stack, db: Database, app: App, browser: Browser
) -> None:
    issued = await tokens_for(app, browser)
    async with httpx.AsyncClient(timeout=30) as http:
        other = await register(acme, db, http)
        for token in (issued["access_token"], issued["refresh_token"]):
            seen = await other.post("introspection_endpoint", token=token)
            assert seen.json() == {"active": False}
        stolen = await other.post(
            "token_endpoint", grant_type="refresh_token", refresh_token=issued["refresh_token"]
        )
        assert stolen.json()["error"] == "invalid_grant"
    assert (await app.post("introspection_endpoint", token=issued["access_token"])).json()["active"]


async def test_an_expired_code_is_refused(app: App, browser: Browser, db: Database) -> None:
    back = await authorize(browser, app)
    async with db.transaction() as session:
        await session.execute(update(OidcCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    late = await app.post(
        "token_endpoint", grant_type="authorization_code", code=back["code"],
        redirect_uri=REDIRECT,
    )  # fmt: skip
    assert late.json()["error"] == "invalid_grant"


async def test_a_public_client_must_use_pkce(acme: Stack, db: Database, browser: Browser) -> None:
    async with db.transaction() as session:
        added = await clients.add(
            session,
            clients.Registration(APP_ID, "SPA", [REDIRECT], [], None, None, public=True),
        )
        client_id = added.client_id
    response = await browser.http.get(
        acme.identity + "/oauth2/authorize",
        params={"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
                "scope": "openid", "state": "s"},
    )  # fmt: skip
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["invalid_request"] and "PKCE" in query["error_description"][0]


async def test_a_member_not_authorised_for_the_app_gets_no_code(app: App, browser: Browser) -> None:
    """dave is in acme's directory but the app is not authorised to him (authSync)."""
    with pytest.raises(NotBack) as stopped:
        await authorize(browser, app, account="dave@acme")
    assert_refused(stopped.value.response, "member_unknown")


async def test_an_app_refreshing_its_tokens_keeps_the_session_in_use(
    app: App, browser: Browser, db: Database
) -> None:
    """The browser may never come back to identity while the member works in the app: each
    refresh counts as use, so the idle timeout (30 minutes) runs from the last one."""
    issued = await tokens_for(app, browser)

    async def idle_for(minutes: int) -> None:
        async with db.transaction() as session:
            await session.execute(
                update(MemberSession).values(last_seen_at=utcnow() - timedelta(minutes=minutes))
            )

    await idle_for(25)
    refreshed = await app.post(
        "token_endpoint", grant_type="refresh_token", refresh_token=issued["refresh_token"]
    )
    assert refreshed.status_code == 200, refreshed.text
    await idle_for(20)  # 45 minutes after the browser's last visit, 20 after the refresh
    again = await app.post(
        "token_endpoint", grant_type="refresh_token",
        refresh_token=refreshed.json()["refresh_token"],
    )  # fmt: skip
    assert again.status_code == 200, again.text
    await idle_for(31)
    late = await app.post(
        "token_endpoint", grant_type="refresh_token", refresh_token=again.json()["refresh_token"]
    )
    assert late.json()["error"] == "invalid_grant"


async def test_an_id_token_alone_ends_no_one_elses_session(
    acme: Stack, app: App, browser: Browser
) -> None:
    """A leaked ID token sent from another browser (or by a cross-site link) must not sign
    the member out: only the browser whose session it names ends it."""
    issued = await tokens_for(app, browser)
    params = {"id_token_hint": issued["id_token"], "post_logout_redirect_uri": POST_LOGOUT}
    async with httpx.AsyncClient() as elsewhere:
        answer = await elsewhere.get(app.config["end_session_endpoint"], params=params)
    assert answer.status_code == 303 and answer.headers["location"] == POST_LOGOUT
    assert (await app.post("introspection_endpoint", token=issued["access_token"])).json()["active"]
    bob = acme.browser()
    try:
        await bob.flow_a("bob@acme", "bob-pw")
        asked = await bob.http.get(app.config["end_session_endpoint"], params=params)
        assert asked.headers["location"] == "/sso/logout"  # bob is asked, alice is untouched
        assert (await bob.session()).status_code == 200
    finally:
        await bob.close()
    assert (await browser.session()).status_code == 200
    # Neither an access token nor a logout token is an ID token.
    wrong = {**params, "id_token_hint": issued["access_token"]}
    assert (
        await browser.http.get(app.config["end_session_endpoint"], params=wrong)
    ).status_code == 400


async def test_hostile_parameters_are_refused_not_500(
    acme: Stack, app: App, browser: Browser
) -> None:
    endpoint = app.config["authorization_endpoint"]
    base = {"client_id": app.client_id, "redirect_uri": REDIRECT, "response_type": "code",
            "scope": "openid", "state": "s"}  # fmt: skip
    for extra in ({"nonce": "n\x00"}, {"client_id": "a\x00b"}, {"state": "x" * 5000}):
        page = await browser.http.get(endpoint, params={**base, **extra})
        assert page.status_code == 400 and "location" not in page.headers, extra
    for extra in (
        {"nonce": "n" * 300},
        {"code_challenge": "", "code_challenge_method": "S256"},
        {"code_challenge": "short", "code_challenge_method": "S256"},
    ):
        redirected = await browser.http.get(endpoint, params={**base, **extra})
        query = parse_qs(urlsplit(redirected.headers["location"]).query)
        assert query["error"] == ["invalid_request"], extra
    token = await app.http.post(
        app.config["token_endpoint"],
        data={"grant_type": "authorization_code", "code": "x", "client_id": "a\x00b"},
    )
    assert token.status_code == 400 and token.json()["error"] == "invalid_request"


async def test_another_client_cannot_spend_a_code(
    acme: Stack, db: Database, app: App, browser: Browser
) -> None:
    back = await authorize(browser, app)
    async with httpx.AsyncClient(timeout=30) as http:
        other = await register(acme, db, http)
        stolen = await other.post(
            "token_endpoint", grant_type="authorization_code", code=back["code"],
            redirect_uri=REDIRECT,
        )  # fmt: skip
        assert stolen.json()["error"] == "invalid_grant"
    mine = await app.post(
        "token_endpoint", grant_type="authorization_code", code=back["code"],
        redirect_uri=REDIRECT,
    )  # fmt: skip
    assert mine.status_code == 200, mine.text


async def test_a_hint_naming_another_enterprise_is_not_answered_from_this_session(
    app: App, browser: Browser
) -> None:
    await authorize(browser, app)  # alice of acme
    silent = await browser.http.get(
        app.config["authorization_endpoint"],
        params={"client_id": app.client_id, "redirect_uri": REDIRECT, "response_type": "code",
                "scope": "openid", "state": "s", "prompt": "none", "login_hint": "x@beta"},
    )  # fmt: skip
    query = parse_qs(urlsplit(silent.headers["location"]).query)
    assert query["error"] == ["login_required"]


async def test_prompt_login_makes_the_member_type_their_password_again(
    app: App, browser: Browser
) -> None:
    """The auth centre would sign the member in silently from its own session: identity ends
    that first, so a fresh sign-in really is one, and auth_time says when."""
    first = await tokens_for(app, browser)
    response = await browser.http.get(
        app.config["authorization_endpoint"],
        params={"client_id": app.client_id, "redirect_uri": REDIRECT, "response_type": "code",
                "scope": "openid", "state": "s", "prompt": "login"},
    )  # fmt: skip
    for _ in range(8):
        if response.status_code == 200:
            break
        location = response.headers["location"]
        assert not location.startswith(REDIRECT), "signed in again without a password"
        response = await browser.http.get(urljoin(str(response.url), location))
    assert login_form(response.text).action  # the auth centre's password form
    second = await tokens_for(app, browser, prompt="login")
    keys = await app.keys()
    before = jwt.decode(first["id_token"], keys, algorithms=["ES256"]).claims["auth_time"]
    after = jwt.decode(second["id_token"], keys, algorithms=["ES256"]).claims["auth_time"]
    assert after >= before
