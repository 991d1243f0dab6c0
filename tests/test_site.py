"""The service's own front door: `/` says what it is and where to sign in, and an unknown
address is a page for a browser and JSON for a program."""

from __future__ import annotations

import httpx2 as httpx


async def test_the_home_page_says_what_this_is_and_where_to_sign_in(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'href="/sso/login"' in page.text and "KooGallery" in page.text


async def test_an_unknown_address_is_a_page_for_browsers_and_json_for_programs(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/no/such/page", headers={"Accept": "text/html,*/*"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert 'href="/"' in page.text
    api = await client.get("/no/such/page", headers={"Accept": "application/json"})
    assert api.status_code == 404
    assert api.json() == {"error": "not_found", "message": "Not Found"}
    wrong_method = await client.delete("/sso/session")
    assert wrong_method.status_code == 405
