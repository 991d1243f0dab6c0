"""The simulator's auth centre over ASGI: login, codes, tokens, userinfo, logout (contract §5)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx2 as httpx
import pytest

from identity.simulator.authcentre import create_auth_centre
from tests.helpers.clock import Clock
from tests.helpers.simulator_world import (
    ACME,
    APP_ID,
    BETA,
    CALLBACK,
    SIM,
    authorize_params,
    exchange,
    login_form,
    redirect_query,
    sign_in,
    submit,
    world,
)

UNAUTHORIZED = {
    "error": "unauthorized",
    "error_description": "Full authentication is required to access this resource",
}
INVALID_CODE = {"error": "invalid_grant", "error_description": "Invalid authorization code"}
BAD_CLIENT = {"error": "invalid_client", "error_description": "Bad client credentials"}
INVALID_REFRESH = {"error": "invalid_grant", "error_description": "Invalid refresh token"}
UNIFIED = "/unified-login/portal-login"


async def _client(clock: Clock, *, shared_client: bool = False) -> httpx.AsyncClient:
    app = create_auth_centre(
        world(shared_client=shared_client),
        callback_base="https://identity.example.com/",
        clock=clock,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=SIM)


@pytest.fixture
async def sim(clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(clock) as client:
        yield client


async def _tokens(sim: httpx.AsyncClient, user: str = "alice@acme", pw: str = "alice-pw") -> dict:
    query = await sign_in(sim, user, pw)
    response = await exchange(sim, query["code"])
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _userinfo(sim: httpx.AsyncClient, token: str) -> httpx.Response:
    return await sim.get("/api/v1/oauth2/userinfo", headers={"Authorization": f"Bearer {token}"})


# --- login ---------------------------------------------------------------------------------


async def test_authorize_shows_an_escaped_bilingual_login_form(sim: httpx.AsyncClient) -> None:
    hostile = '"><script>alert(1)</script>'
    page = await sim.get("/api/v1/oauth2/authorize", params=authorize_params(state=hostile))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<script>" not in page.text
    form = login_form(page.text)
    assert form.action == "/api/v1/login"
    assert "登录 / Sign in" in form.button
    assert {"username", "password"} <= set(form.inputs)
    assert form.inputs["state"] == hostile  # carried in a hidden field, escaped
    assert form.inputs["client_id"] == ACME["clientId"]
    assert form.inputs["redirect_uri"] == CALLBACK


@pytest.mark.parametrize(
    "change",
    [
        {"client_id": "nobody"},
        {"client_id": ""},
        {"redirect_uri": "https://evil.example.com/cb"},
        {"redirect_uri": ""},
        {"response_type": "token"},
    ],
)
async def test_authorize_refuses_bad_parameters_with_a_page(
    sim: httpx.AsyncClient, change: dict[str, str]
) -> None:
    response = await sim.get("/api/v1/oauth2/authorize", params=authorize_params(**change))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


async def test_flow_b_redirects_with_code_state_tenant_and_sets_the_sso_cookie(
    sim: httpx.AsyncClient,
) -> None:
    page = await sim.get("/api/v1/oauth2/authorize", params=authorize_params())
    response = await submit(sim, page, "alice@acme", "alice-pw")
    where, query = redirect_query(response)
    assert where == CALLBACK
    assert set(query) == {"code", "state", "tenant"}
    assert (query["state"], query["tenant"]) == ("st8", ACME["tenantId"])
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("sim_sso=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    # Signed in: the next authorize redirects at once, without state when none is given.
    again = await sim.get("/api/v1/oauth2/authorize", params=authorize_params(state=""))
    where, second = redirect_query(again)
    assert where == CALLBACK and set(second) == {"code", "tenant"}
    assert second["code"] != query["code"]


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("alice@acme", "wrong"),
        ("alice@beta", "alice-pw"),  # beta's alice has another password
        ("alice", "alice-pw"),
        ("zoe@acme", "alice-pw"),
        ("alice@nowhere", "alice-pw"),
    ],
)
async def test_wrong_credentials_show_the_form_again_with_401(
    sim: httpx.AsyncClient, username: str, password: str
) -> None:
    page = await sim.get("/api/v1/oauth2/authorize", params=authorize_params())
    response = await submit(sim, page, username, password)
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    form = login_form(response.text)
    assert form.inputs["state"] == "st8" and form.inputs["username"] == username
    assert "Wrong account or password" in response.text


async def test_a_member_of_another_tenant_cannot_use_this_client(sim: httpx.AsyncClient) -> None:
    page = await sim.get("/api/v1/oauth2/authorize", params=authorize_params())
    response = await submit(sim, page, "alice@beta", "beta-pw")
    assert response.status_code == 401
    assert "does not use this app" in response.text


async def test_the_idp_does_not_check_enable_or_authorisation(sim: httpx.AsyncClient) -> None:
    """§3.3: identity must refuse them itself, "even if the IdP still issues a token"."""
    for user, pw in (("carol@acme", "carol-pw"), ("dave@acme", "dave-pw")):
        await sim.get("/api/v1/logout")
        tokens = await _tokens(sim, user, pw)
        assert (await _userinfo(sim, tokens["access_token"])).json()["userName"] == user.split("@")[
            0
        ]


async def test_flow_a_unified_login_has_no_state_and_carries_the_tenant(
    sim: httpx.AsyncClient,
) -> None:
    params = {"ind": "UNOP", "appId": APP_ID}
    page = await sim.get(UNIFIED, params=params)
    assert page.status_code == 200
    assert "登录 / Sign in" in login_form(page.text).button
    where, query = redirect_query(await submit(sim, page, "alice@beta", "beta-pw"))
    assert where == CALLBACK
    assert set(query) == {"code", "tenant"} and query["tenant"] == BETA["tenantId"]
    # The code belongs to the member's own tenant client.
    response = await exchange(sim, query["code"], BETA["clientId"], BETA["clientSecret"])
    assert response.status_code == 200, response.text
    # Signed in: the unified login goes straight back.
    _, again = redirect_query(await sim.get(UNIFIED, params=params))
    assert set(again) == {"code", "tenant"} and again["tenant"] == BETA["tenantId"]


@pytest.mark.parametrize("params", [{"appId": APP_ID}, {"ind": "UNOP", "appId": "other-app"}])
async def test_flow_a_refuses_a_bad_link(sim: httpx.AsyncClient, params: dict[str, str]) -> None:
    response = await sim.get(UNIFIED, params=params)
    assert response.status_code == 400 and "location" not in response.headers


# --- codes ---------------------------------------------------------------------------------


async def test_a_code_is_single_use(sim: httpx.AsyncClient) -> None:
    query = await sign_in(sim, "alice@acme", "alice-pw")
    first = await exchange(sim, query["code"])
    assert first.status_code == 200
    body = first.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "refresh_token"}
    assert (body["token_type"], body["expires_in"], body["scope"]) == (
        "Bearer",
        7200,
        "get_user_info",
    )
    assert first.headers["cache-control"] == "no-store"
    second = await exchange(sim, query["code"])
    assert (second.status_code, second.json()) == (400, INVALID_CODE)


async def test_a_code_expires(sim: httpx.AsyncClient, clock: Clock) -> None:
    fresh = await sign_in(sim, "alice@acme", "alice-pw")
    stale = await sign_in(sim, "alice@acme", "alice-pw")
    clock.advance(59)
    assert (await exchange(sim, fresh["code"])).status_code == 200
    clock.advance(1)
    response = await exchange(sim, stale["code"])
    assert (response.status_code, response.json()) == (400, INVALID_CODE)


async def test_client_id_mismatch_burns_the_code(sim: httpx.AsyncClient) -> None:
    query = await sign_in(sim, "alice@acme", "alice-pw")
    wrong = await exchange(sim, query["code"], BETA["clientId"], BETA["clientSecret"])
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "invalid_client", "error_description": "Client ID mismatch"}
    right = await exchange(sim, query["code"])
    assert (right.status_code, right.json()) == (400, INVALID_CODE)


async def test_redirect_uri_mismatch_burns_the_code(sim: httpx.AsyncClient) -> None:
    query = await sign_in(sim, "alice@acme", "alice-pw")
    wrong = await exchange(sim, query["code"], redirect_uri="https://identity.example.com/x")
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    assert (await exchange(sim, query["code"])).json() == INVALID_CODE


@pytest.mark.parametrize(
    ("client_id", "secret"),
    [(ACME["clientId"], "wrong-secret"), ("nobody", ACME["clientSecret"]), (ACME["clientId"], "")],
)
async def test_bad_client_credentials(sim: httpx.AsyncClient, client_id: str, secret: str) -> None:
    """The client is authenticated before the code is looked at, so the code survives."""
    query = await sign_in(sim, "alice@acme", "alice-pw")
    response = await exchange(sim, query["code"], client_id, secret)
    assert (response.status_code, response.json()) == (401, BAD_CLIENT)
    assert (await exchange(sim, query["code"])).status_code == 200


async def test_http_basic_client_authentication(sim: httpx.AsyncClient) -> None:
    query = await sign_in(sim, "alice@acme", "alice-pw")
    form = {"grant_type": "authorization_code", "code": query["code"], "redirect_uri": CALLBACK}
    auth = (ACME["clientId"], ACME["clientSecret"])
    response = await sim.post("/api/v1/oauth2/token", data=form, auth=auth)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("grant_type", "error"),
    [("password", "unsupported_grant_type"), ("", "invalid_request")],
)
async def test_other_grant_types(sim: httpx.AsyncClient, grant_type: str, error: str) -> None:
    form = {"grant_type": grant_type, "client_id": ACME["clientId"]}
    form["client_secret"] = ACME["clientSecret"]
    response = await sim.post("/api/v1/oauth2/token", data={k: v for k, v in form.items() if v})
    assert (response.status_code, response.json()["error"]) == (400, error)


# --- refresh, userinfo, logout -------------------------------------------------------------


async def _refresh(sim: httpx.AsyncClient, token: str, client: dict = ACME) -> httpx.Response:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": token,
        "client_id": client["clientId"],
        "client_secret": client["clientSecret"],
    }
    return await sim.post("/api/v1/oauth2/token", data=form)


async def test_refresh_rotates_and_the_old_tokens_die(sim: httpx.AsyncClient) -> None:
    old = await _tokens(sim)
    response = await _refresh(sim, old["refresh_token"])
    assert response.status_code == 200, response.text
    new = response.json()
    assert new["expires_in"] == 7200 and new["token_type"] == "Bearer"
    assert new["refresh_token"] != old["refresh_token"]
    assert (await _userinfo(sim, new["access_token"])).status_code == 200
    assert (await _userinfo(sim, old["access_token"])).status_code == 401
    again = await _refresh(sim, old["refresh_token"])
    assert (again.status_code, again.json()) == (400, INVALID_REFRESH)
    other_client = await _refresh(sim, new["refresh_token"], BETA)
    assert (other_client.status_code, other_client.json()["error"]) == (400, "invalid_grant")
    assert (await _refresh(sim, "made-up")).json() == INVALID_REFRESH


async def test_tokens_expire(sim: httpx.AsyncClient, clock: Clock) -> None:
    tokens = await _tokens(sim)
    clock.advance(7199)
    assert (await _userinfo(sim, tokens["access_token"])).status_code == 200
    clock.advance(1)
    assert (await _userinfo(sim, tokens["access_token"])).status_code == 401
    assert (await _refresh(sim, tokens["refresh_token"])).status_code == 200
    later = await _tokens(sim)
    clock.advance(30 * 86400)
    assert (await _refresh(sim, later["refresh_token"])).json() == INVALID_REFRESH


async def test_userinfo_fields(sim: httpx.AsyncClient) -> None:
    info = (await _userinfo(sim, (await _tokens(sim))["access_token"])).json()
    user_id = info.pop("id")
    assert re.fullmatch(r"\d{17}-[0-9A-F]{4}-[0-9A-F]{12}", user_id)
    assert info == {
        "userId": user_id,
        "userName": "alice",
        "name": "Alice 爱丽丝",
        "email": "alice@acme.example.com",
        "mobile": "+8613800000001",
        "role": "admin",
        "organizationName": "ACME",
        "organizationCode": "acme",
        "projectName": "ACME 示例企业",
        "tenant": ACME["tenantId"],
    }
    again = await _userinfo(sim, (await _tokens(sim))["access_token"])
    assert again.json()["id"] == user_id  # stable per member


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer made-up", "Basic YTpi"])
async def test_userinfo_without_a_good_token_is_401(
    sim: httpx.AsyncClient, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    response = await sim.get("/api/v1/oauth2/userinfo", headers=headers)
    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)


async def test_logout_clears_the_session_and_redirects(sim: httpx.AsyncClient) -> None:
    await sign_in(sim, "alice@acme", "alice-pw")
    cookie = sim.cookies["sim_sso"]
    back = "https://identity.example.com/sso/logged-out?x=1"
    response = await sim.get("/api/v1/logout", params={"redirect_url": back})
    assert (response.status_code, response.headers["location"]) == (302, back)
    assert response.content == b""
    assert re.match(r'sim_sso="?"?; ', response.headers["set-cookie"])
    assert "sim_sso" not in sim.cookies
    # The session is over at the auth centre, not only in this browser.
    sim.cookies.set("sim_sso", cookie)
    page = await sim.get("/api/v1/oauth2/authorize", params=authorize_params())
    assert page.status_code == 200 and login_form(page.text).action == "/api/v1/login"


async def test_logout_without_redirect_goes_to_the_login_page(sim: httpx.AsyncClient) -> None:
    response = await sim.get("/api/v1/logout")
    assert response.status_code == 302
    assert response.headers["location"] == f"{UNIFIED}?ind=UNOP&appId={APP_ID}"
    refused = await sim.get("/api/v1/logout", params={"redirect_url": "javascript:alert(1)"})
    assert refused.status_code == 400


# --- test hooks ----------------------------------------------------------------------------


async def test_stats_count_grants_and_userinfo_calls(sim: httpx.AsyncClient) -> None:
    tokens = await _tokens(sim)
    await _refresh(sim, tokens["refresh_token"])
    await _refresh(sim, tokens["refresh_token"])  # refused: rotated
    await _userinfo(sim, tokens["access_token"])  # refused: replaced
    stats = (await sim.get("/_sim/stats")).json()
    assert stats == {
        "grants": {"authorization_code": 1, "refresh_token": 1},
        "token_errors": 1,
        "userinfo": 1,
        "userinfo_errors": 1,
    }


async def test_revoke_ends_a_members_tokens(sim: httpx.AsyncClient) -> None:
    tokens = await _tokens(sim)
    response = await sim.post("/_sim/revoke", params={"userName": "alice", "tenantId": "acme"})
    assert response.json() == {"revoked": 2}
    assert (await _refresh(sim, tokens["refresh_token"])).json() == INVALID_REFRESH
    assert (await _userinfo(sim, tokens["access_token"])).status_code == 401
    unknown = await sim.post("/_sim/revoke", params={"userName": "zoe", "tenantId": "acme"})
    assert unknown.status_code == 404


async def test_injected_failures_answer_the_next_calls(sim: httpx.AsyncClient) -> None:
    tokens = await _tokens(sim)
    assert (await sim.post("/_sim/fail", params={"status": 503, "count": 2})).status_code == 200
    assert (await _refresh(sim, tokens["refresh_token"])).status_code == 503
    assert (await _userinfo(sim, tokens["access_token"])).status_code == 503
    assert (await _refresh(sim, tokens["refresh_token"])).status_code == 200  # not burnt
    assert (await sim.post("/_sim/fail", params={"status": 200})).status_code == 400


async def test_a_shared_client_id_serves_both_tenants(clock: Clock) -> None:
    """The misconfiguration tests stage: identity must notice userinfo's tenant (§5.2 step 4)."""
    async with await _client(clock, shared_client=True) as sim:
        query = await sign_in(sim, "alice@beta", "beta-pw", ACME["clientId"])
        assert query["tenant"] == BETA["tenantId"]
        tokens = (await exchange(sim, query["code"])).json()
        info = (await _userinfo(sim, tokens["access_token"])).json()
        assert (info["tenant"], info["name"]) == (BETA["tenantId"], "Alice of Beta")
