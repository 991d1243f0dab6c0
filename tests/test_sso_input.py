"""Control characters in `/sso` input are refused up front, the same on SQLite and PostgreSQL.

A NUL used to reach the database: PostgreSQL cannot take it in a text parameter (a 500 and a
traceback in the log), SQLite simply found nothing (a 404). Every input is checked before use:
query, path, our cookies, the logout form.
"""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
import pytest

from tests.helpers.simulator_world import APP_ID
from tests.helpers.stack import assert_refused

CALLBACK = f"/sso/callback/{APP_ID}"
NUL = "\x00"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/sso/login", {"tenant": f"a{NUL}b"}),
        ("/sso/login", {"tenant": "acme", "app": f"demo{NUL}"}),
        ("/sso/login", {"tenant": "acme", "next": f"/sso/me{NUL}"}),
        ("/sso/login", {"app": f"x{NUL}"}),  # the enterprise-code page
        ("/sso/callback/a%00b", {"code": "x", "tenant": "t-acme-0001"}),
        (CALLBACK, {"code": "x", "tenant": f"t-acme{NUL}"}),
        (CALLBACK, {"code": f"x{NUL}", "tenant": "t-acme-0001"}),
        (CALLBACK, {"code": "x", "state": f"s{NUL}"}),
        (CALLBACK, {"error": f"denied{NUL}"}),
        ("/sso/logout", {"redirect_url": f"/x{NUL}"}),
        ("/sso/me", {f"x{NUL}": "1"}),
    ],
)
async def test_a_nul_in_the_query_or_path_is_a_bad_request(
    client: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    assert_refused(await client.get(path, params=params), "bad_request")


@pytest.mark.parametrize("cookie", ["__Host-identity_session", "__Host-identity_login"])
async def test_a_nul_in_our_cookies_is_a_bad_request(
    client: httpx.AsyncClient, cookie: str
) -> None:
    headers = {"Cookie": f'{cookie}="ab\\000cd"'}  # a quoted cookie: \000 is a NUL
    page = await client.get(
        CALLBACK, params={"code": "x", "tenant": "t-acme-0001"}, headers=headers
    )
    assert_refused(page, "bad_request")
    assert_refused(await client.get("/sso/me", headers=headers), "bad_request")


@pytest.mark.parametrize("form", [{"csrf": f"a{NUL}"}, {"csrf": "a", "redirect_url": f"/{NUL}"}])
async def test_a_nul_in_the_logout_form_is_a_bad_request(
    client: httpx.AsyncClient, form: dict[str, Any]
) -> None:
    assert_refused(await client.post("/sso/logout", data=form), "bad_request")


async def test_nothing_about_the_refused_input_reaches_the_log(
    client: httpx.AsyncClient, capfd: pytest.CaptureFixture[str]
) -> None:
    assert_refused(await client.get("/sso/login", params={"tenant": f"a{NUL}b"}), "bad_request")
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert "\\u0000" not in out + err and NUL not in out + err


@pytest.mark.parametrize("params", [{"app": f"a{NUL}b"}, {f"x{NUL}": "1"}])
async def test_a_nul_sent_to_the_session_api_is_a_json_bad_request(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    """`/sso/session` is for programs: its refusal is JSON `{"error", "message"}`, as its
    OpenAPI description says, never the login's HTML page."""
    answer = await client.get("/sso/session", params=params)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/json", answer.headers
    assert answer.json()["error"] == "bad_request" and answer.json()["message"], answer.text
