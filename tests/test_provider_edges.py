"""The provider's edges: crafted parameters, repeated parameters, one client authentication per
request. identity and the simulator as processes; the app's back end and a browser over HTTP."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2 as httpx

from identity.db import Database
from tests.helpers.oidc_app import (
    POST_LOGOUT,
    REDIRECT,
    App,
    authorize,
    register,
    tokens_for,
)
from tests.helpers.stack import Browser, Stack


def _query(response: httpx.Response) -> dict[str, list[str]]:
    """The query of a redirect back to the app."""
    location = response.headers["location"]
    assert location.startswith(REDIRECT), location
    return parse_qs(urlsplit(location).query)


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def _request(app: App, **params: str) -> dict[str, str]:
    return {"client_id": app.client_id, "redirect_uri": REDIRECT, "response_type": "code",
            "scope": "openid", "state": "s", **params}  # fmt: skip


async def test_max_age_that_is_no_whole_number_of_seconds_goes_back_as_invalid_request(
    acme: Stack, app: App, browser: Browser
) -> None:
    """`²` passes str.isdigit() and not int(); a huge value overflows a timedelta, which only a
    signed-in browser reaches."""
    await authorize(browser, app)  # signed in: the age of the sign-in is compared
    for max_age in ("²", "99999999999999", "-1", "1e3", " 5"):
        answer = await browser.http.get(
            app.config["authorization_endpoint"], params=_request(app, max_age=max_age)
        )
        assert answer.status_code == 302, (max_age, answer.status_code)
        query = _query(answer)
        assert query["error"] == ["invalid_request"], max_age
        assert query["state"] == ["s"] and query["iss"] == [acme.identity]
    fine = await browser.http.get(
        app.config["authorization_endpoint"], params=_request(app, max_age="2147483647")
    )
    assert "code" in _query(fine)


async def test_a_control_character_in_basic_credentials_is_a_bad_request(
    app: App, browser: Browser
) -> None:
    """The form refuses control characters; HTTP Basic must too (PostgreSQL cannot compare a
    NUL: it answered 500)."""
    issued = await tokens_for(app, browser)
    for name in ("token_endpoint", "introspection_endpoint", "revocation_endpoint"):
        for client_id, secret in (("a\x00b", "x"), (app.client_id, "x\x00")):
            answer = await app.http.post(
                app.config[name],
                data={"grant_type": "refresh_token", "token": issued["refresh_token"],
                      "refresh_token": issued["refresh_token"]},
                headers={"Authorization": _basic(client_id, secret)},
            )  # fmt: skip
            assert answer.status_code == 400, (name, answer.status_code, answer.text)
            assert answer.json()["error"] == "invalid_request"
    seen = await app.post("introspection_endpoint", token=issued["refresh_token"])
    assert seen.json()["active"] is True  # nothing was spent or revoked


async def test_a_repeated_parameter_at_authorize_is_refused_not_the_last_taken(
    acme: Stack, db: Database, app: App, browser: Browser
) -> None:
    """RFC 6749 §3.1: a parameter must not be sent twice. A repeated client_id or redirect_uri
    gets the error page (which client, which URI, cannot be told); any other goes back to the
    app as invalid_request, with state (unless state is the one repeated) and iss."""
    await authorize(browser, app)  # signed in: a code would be issued at once
    async with httpx.AsyncClient(timeout=30) as http:
        other = await register(acme, db, http)
    endpoint = app.config["authorization_endpoint"]

    async def send(pairs: list[tuple[str, str]]) -> httpx.Response:
        return await browser.http.get(f"{endpoint}?{urlencode(pairs)}")

    base = list(_request(app).items())
    for name, first in (("client_id", other.client_id), ("redirect_uri", REDIRECT + "x")):
        page = await send([(name, first), *base])
        assert page.status_code == 400 and "location" not in page.headers, name
        assert f"{name} is repeated" in page.text
    for name, value in (("scope", "openid email"), ("nonce", "n"), ("code_challenge", "x")):
        answer = await send([*base, (name, value), (name, value)])
        query = _query(answer)
        assert query["error"] == ["invalid_request"], name
        assert f"{name} is repeated" in query["error_description"][0]
        assert query["state"] == ["s"] and query["iss"] == [acme.identity]
    twice = await send([*base, ("state", "t")])
    query = _query(twice)
    assert query["error"] == ["invalid_request"] and "state" not in query


async def test_one_client_authentication_method_per_request(
    acme: Stack, db: Database, app: App, browser: Browser
) -> None:
    """RFC 6749 §2.3: a client must not use more than one authentication method in a request.
    Basic with a client_secret in the body, or Basic naming one client and the body another,
    is invalid_request. Basic with the body's client_id naming the same client only identifies
    it again (RFC 6749 §3.2.1 allows client_id in the body), and is accepted."""
    issued = await tokens_for(app, browser)
    async with httpx.AsyncClient(timeout=30) as http:
        other = await register(acme, db, http)
    basic = {"Authorization": _basic(app.client_id, app.secret)}
    token = issued["refresh_token"]
    twice = (
        {"client_secret": app.secret},
        {"client_id": app.client_id, "client_secret": app.secret},
        {"client_id": other.client_id, "client_secret": other.secret},
        {"client_id": other.client_id},
    )
    for name in ("token_endpoint", "introspection_endpoint", "revocation_endpoint"):
        for extra in twice:
            form = {"grant_type": "refresh_token", "refresh_token": token, "token": token}
            answer = await app.http.post(app.config[name], data=form | extra, headers=basic)
            assert answer.status_code == 400, (name, extra, answer.status_code, answer.text)
            assert answer.json()["error"] == "invalid_request", (name, extra)
    seen = await app.http.post(
        app.config["introspection_endpoint"],
        data={"token": token, "client_id": app.client_id},
        headers=basic,
    )
    assert seen.status_code == 200 and seen.json()["active"] is True


async def test_end_session_takes_a_posted_form_with_the_checks_of_a_get(
    acme: Stack, app: App, browser: Browser
) -> None:
    """RP-Initiated Logout 1.0 §2: the end-session endpoint takes GET and a POSTed form."""
    issued = await tokens_for(app, browser)
    endpoint = app.config["end_session_endpoint"]
    hint = {"id_token_hint": issued["id_token"]}
    for refused in (
        {"data": hint | {"post_logout_redirect_uri": REDIRECT}},  # not registered for it
        {"data": hint | {"client_id": "another"}},
        {"content": urlencode([*hint.items(), *hint.items()]),
         "headers": {"Content-Type": "application/x-www-form-urlencoded"}},  # repeated
        {"json": hint},  # not a form
    ):  # fmt: skip
        page = await browser.http.post(endpoint, **refused)
        assert page.status_code == 400 and "location" not in page.headers, refused
    assert (await browser.session()).status_code == 200  # a refused request ends nothing

    back = {"post_logout_redirect_uri": POST_LOGOUT, "state": "bye"}
    async with httpx.AsyncClient() as elsewhere:  # a form posted from the app's own site
        moved = await elsewhere.post(endpoint, data=hint | back)
    # brings no SameSite=Lax cookie: the same request as a GET, on which the browser sends it
    assert moved.status_code == 303
    assert moved.headers["location"] == "/oauth2/logout?" + urlencode(hint | back)

    ended = await browser.http.post(endpoint, data=hint | back)
    assert ended.status_code == 303
    location = ended.headers["location"]
    assert location.startswith(acme.sim + "/api/v1/logout?")  # the marketplace session too
    assert parse_qs(urlsplit(location).query)["redirect_url"] == [POST_LOGOUT + "?state=bye"]
    assert (await browser.session()).status_code == 401


async def test_a_token_whose_crit_header_is_no_list_is_refused_not_500(
    acme: Stack, app: App, browser: Browser
) -> None:
    """joserfc raises TypeError, not a JOSE error, on such a header: every endpoint reading a
    token back refuses it as it refuses any other bad token."""
    header = base64.urlsafe_b64encode(b'{"alg": "ES256", "crit": null}').rstrip(b"=").decode()
    crafted = f"{header}.e30."
    await authorize(browser, app)
    silent = await browser.http.get(
        app.config["authorization_endpoint"],
        params=_request(app, prompt="none", id_token_hint=crafted),
    )
    assert _query(silent)["error"] == ["invalid_request"]
    ended = await browser.http.get(
        app.config["end_session_endpoint"], params={"id_token_hint": crafted}
    )
    assert ended.status_code == 400 and "location" not in ended.headers
    info = await app.http.get(
        app.config["userinfo_endpoint"], headers={"Authorization": f"Bearer {crafted}"}
    )
    assert info.status_code == 401 and info.json()["error"] == "invalid_token"
    seen = await app.post("introspection_endpoint", token=crafted)
    assert seen.status_code == 200 and seen.json() == {"active": False}
    revoked = await app.post("revocation_endpoint", token=crafted)
    assert revoked.status_code == 200


async def test_another_clients_refresh_token_is_refused_and_left_as_it_was(
    acme: Stack, db: Database, app: App, browser: Browser
) -> None:
    """A refresh token is spent only by the client it was issued to: another client's attempt
    is invalid_grant and neither spends it nor ends its grant."""
    issued = await tokens_for(app, browser)
    form = {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}
    async with httpx.AsyncClient(timeout=30) as http:
        other = await register(acme, db, http)
        stolen = await other.post("token_endpoint", **form)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant", stolen.text
    refreshed = await app.post("token_endpoint", **form)
    assert refreshed.status_code == 200, refreshed.text
    seen = await app.post("introspection_endpoint", token=refreshed.json()["access_token"])
    assert seen.json()["active"] is True
