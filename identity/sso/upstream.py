"""The client of a tenant's auth centre (Huawei OneAccess; contract §5.2 steps 5, 6, 8).

Everything is per tenant: the base URL is the tenant's `domainName`, the credentials are the
(tenant, app) `clientId` and decrypted `clientSecret` (§5.5: never hard-coded). The calls are two
plain requests (a form POST and a bearer GET), so they are made with one pooled httpx2 client
shared by every tenant rather than a per-tenant OAuth client object; the pool keeps connections
to each auth centre open between logins.

Every failure becomes an `UpstreamError` whose `kind` tells the cases apart for logs, metrics
and the member's page: `invalid_grant`, `invalid_client`, `unauthorized`, `timeout`,
`unreachable`, `server_error` (5xx), `bad_response`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx

TOKEN_PATH = "/api/v1/oauth2/token"  # noqa: S105 - a path
USERINFO_PATH = "/api/v1/oauth2/userinfo"
AUTHORIZE_PATH = "/api/v1/oauth2/authorize"
LOGOUT_PATH = "/api/v1/logout"
MAX_EXPIRES_IN = 366 * 86400  # a year: anything longer is not a real access token lifetime


class UpstreamError(Exception):
    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Client:
    """One (tenant, app) OAuth client at one auth centre."""

    domain: str
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str | None
    expires_in: int


def normalise_domain(domain_name: str) -> str:
    """`domainName` includes the scheme (§5.2 step 4); accept it without one (§10 q13)."""
    domain = domain_name.strip().rstrip("/")
    return domain if "://" in domain else "https://" + domain


class AuthCentre:
    def __init__(self, timeout: float) -> None:
        self.http = httpx.AsyncClient(
            timeout=timeout,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            follow_redirects=False,
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def exchange_code(self, client: Client, code: str, redirect_uri: str) -> Tokens:
        return await self._token(
            client,
            {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
        )

    async def refresh(self, client: Client, refresh_token: str) -> Tokens:
        return await self._token(
            client, {"grant_type": "refresh_token", "refresh_token": refresh_token}
        )

    async def userinfo(self, domain: str, access_token: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        body = await self._call("GET", domain + USERINFO_PATH, headers=headers)
        if not isinstance(body.get("userName"), str) or not body["userName"]:
            raise UpstreamError("bad_response", "userinfo has no userName")
        return body

    async def _token(self, client: Client, form: dict[str, str]) -> Tokens:
        form |= {"client_id": client.client_id, "client_secret": client.client_secret}
        body = await self._call("POST", client.domain + TOKEN_PATH, data=form)
        token, expires_in = body.get("access_token"), body.get("expires_in", 7200)
        if not isinstance(token, str) or not token:
            raise UpstreamError("bad_response", "token response lacks access_token")
        if type(expires_in) is not int or not 0 < expires_in <= MAX_EXPIRES_IN:
            raise UpstreamError("bad_response", "token response has an unusable expires_in")
        refresh = body.get("refresh_token")
        return Tokens(token, refresh if isinstance(refresh, str) and refresh else None, expires_in)

    async def _call(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self.http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise UpstreamError("timeout", type(exc).__name__) from exc
        except httpx.HTTPError as exc:
            raise UpstreamError("unreachable", type(exc).__name__) from exc
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if response.status_code >= 500:
            raise UpstreamError("server_error", f"HTTP {response.status_code}")
        if response.status_code != 200 or not isinstance(body, dict):
            raise _oauth_error(response.status_code, body)
        return body


def _oauth_error(status: int, body: Any) -> UpstreamError:
    """The §5.2/§5.5 error bodies: `invalid_grant`, `invalid_client`, `unauthorized`; a 403
    means the domain, client or secret does not match."""
    error = body.get("error") if isinstance(body, dict) else None
    detail = body.get("error_description", "") if isinstance(body, dict) else ""
    if error in ("invalid_grant", "invalid_client", "unauthorized"):
        return UpstreamError(error, str(detail)[:200])
    if status == 403:
        return UpstreamError("invalid_client", "HTTP 403")
    if status == 401:
        return UpstreamError("unauthorized", str(detail)[:200])
    return UpstreamError("bad_response", f"HTTP {status} {error or ''}".strip())
