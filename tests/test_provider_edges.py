"""The provider's edges: crafted parameters, repeated parameters, one client authentication per
request. identity and the simulator as processes; the app's back end and a browser over HTTP."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx

from tests.stack import Browser, Stack
from tests.test_provider_flow import REDIRECT, App, app, authorize, tokens_for

__all__ = ["app"]  # the confidential client fixture


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
