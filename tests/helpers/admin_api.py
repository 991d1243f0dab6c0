"""The admin API as a browser calls it: a member signed in through the marketplace (Flow B),
requests to `/api/admin` with the session's CSRF token, and the one error shape it answers."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx

from tests.helpers.stack import Browser, Stack


async def signed_in(stack: Stack, browser: Browser, account: str, password: str) -> Browser:
    """`browser` signed in as `account` (`user@tenantCode`) through the marketplace (Flow B)."""
    user, _, tenant = account.partition("@")
    landed = await browser.flow_b(tenant, account, password)
    assert landed.status_code == 200, landed.text
    return browser


async def api(
    browser: Browser, method: str, path: str, *, csrf: bool = True, **kw: Any
) -> httpx.Response:
    headers = dict(kw.pop("headers", {}))
    if method != "GET" and csrf:
        headers.setdefault("X-CSRF-Token", (await browser.session()).json()["csrfToken"])
    return await browser.http.request(
        method, browser.stack.identity + "/api/admin" + path, headers=headers, **kw
    )


def problem(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error and body["message"], body
