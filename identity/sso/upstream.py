"""The client of a tenant's auth centre (Huawei OneAccess; contract §5.2 steps 5, 6, 8).

Everything is per tenant: the base URL is the tenant's `domainName`, the credentials are the
(tenant, app) `clientId` and decrypted `clientSecret` (§5.5: never hard-coded). The calls are two
plain requests (a form POST and a bearer GET), so they are made with one pooled httpx2 client
shared by every tenant rather than a per-tenant OAuth client object; the pool keeps connections
to each auth centre open between logins.

Every failure becomes an `UpstreamError` whose `kind` tells the cases apart for logs, metrics
and the member's page: `invalid_grant`, `invalid_client`, `unauthorized`, `timeout`,
`unreachable`, `server_error` (5xx), `bad_response`, `busy` (no call slot for this auth centre
freed up in time) and `unavailable` (its circuit breaker is open).

Anyone can make identity call a tenant's auth centre (a callback with a made-up code), so each
call is bounded (see `limits.py` for the budget and breaker): one deadline for the whole call,
waiting for a slot and reading the body included (httpx's own timeouts apply to each read, so a
server dripping one byte at a time would otherwise hold a call for ever), and a cap on the size
of the answer, read as a stream and dropped past the cap.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2 as httpx
from prometheus_client import Histogram

from identity.sessions.store import Tokens
from identity.settings import Settings
from identity.sso.limits import Breakers, Budget, CircuitOpen, NoSlot

TOKEN_PATH = "/api/v1/oauth2/token"  # noqa: S105 - a path
USERINFO_PATH = "/api/v1/oauth2/userinfo"
AUTHORIZE_PATH = "/api/v1/oauth2/authorize"
LOGOUT_PATH = "/api/v1/logout"
MAX_EXPIRES_IN = 366 * 86400  # a year: anything longer is not a real access token lifetime
POOL_CONNECTIONS = 200
# The calls where the auth centre did not answer; they alone count towards opening a breaker.
# `busy` never reached it; every other kind is an answer (an attacker's made-up code gets one).
TRANSIENT = frozenset({"timeout", "unreachable", "server_error"})


class UpstreamError(Exception):
    def __init__(self, kind: str, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail
        self.retry_after = retry_after


@dataclass(frozen=True)
class Client:
    """One (tenant, app) OAuth client at one auth centre."""

    domain: str
    client_id: str
    client_secret: str


def normalise_domain(domain_name: str) -> str:
    """`domainName` includes the scheme (§5.2 step 4); accept it without one (§10 q13)."""
    domain = domain_name.strip().rstrip("/")
    return domain if "://" in domain else "https://" + domain


@dataclass(frozen=True)
class Bounds:
    """How much of identity one auth centre may take (settings `IDENTITY_UPSTREAM_*`)."""

    deadline: float = 10.0
    per_origin: int = 20
    breaker_failures: int = 5
    breaker_cooldown: float = 30.0
    max_response_bytes: int = 64 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> Bounds:
        return cls(
            deadline=settings.upstream_timeout_seconds,
            per_origin=settings.upstream_calls_per_auth_centre,
            breaker_failures=settings.upstream_breaker_failures,
            breaker_cooldown=settings.upstream_breaker_cooldown_seconds,
            max_response_bytes=settings.upstream_max_response_bytes,
        )


class AuthCentre:
    def __init__(self, bounds: Bounds, seconds: Histogram | None = None) -> None:
        """`seconds`: times every call by its kind (`token`, `refresh`, `userinfo`)."""
        self.bounds = bounds
        self.seconds = seconds
        self.budget = Budget(bounds.per_origin)
        self.breakers = Breakers(bounds.breaker_failures, bounds.breaker_cooldown)
        # The shared pool always holds several auth centres' budgets: one cannot fill it.
        pool = max(POOL_CONNECTIONS, 4 * bounds.per_origin)
        self.http = httpx.AsyncClient(
            timeout=bounds.deadline,
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=50),
            follow_redirects=False,
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def exchange_code(self, client: Client, code: str, redirect_uri: str) -> Tokens:
        return await self._token(
            "token",
            client,
            {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
        )

    async def refresh(self, client: Client, refresh_token: str) -> Tokens:
        return await self._token(
            "refresh", client, {"grant_type": "refresh_token", "refresh_token": refresh_token}
        )

    async def userinfo(self, domain: str, access_token: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        body = await self._call("userinfo", "GET", domain + USERINFO_PATH, headers=headers)
        if not isinstance(body.get("userName"), str) or not body["userName"]:
            raise UpstreamError("bad_response", "userinfo has no userName")
        return body

    async def get(
        self, call: str, url: str, parse: Parse, params: dict[str, str]
    ) -> dict[str, Any]:
        """Another protocol's GET (`identity.sso.cas`) within the same bounds, breaker and
        timing as the OAuth calls; `parse` reads its answer."""
        return await self._call(call, "GET", url, parse, params=params)

    async def _token(self, call: str, client: Client, form: dict[str, str]) -> Tokens:
        form |= {"client_id": client.client_id, "client_secret": client.client_secret}
        body = await self._call(call, "POST", client.domain + TOKEN_PATH, data=form)
        token, expires_in = body.get("access_token"), body.get("expires_in", 7200)
        if not isinstance(token, str) or not token:
            raise UpstreamError("bad_response", "token response lacks access_token")
        if type(expires_in) is not int or not 0 < expires_in <= MAX_EXPIRES_IN:
            raise UpstreamError("bad_response", "token response has an unusable expires_in")
        refresh = body.get("refresh_token")
        return Tokens(token, refresh if isinstance(refresh, str) and refresh else None, expires_in)

    async def _call(
        self, call: str, method: str, url: str, parse: Parse | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """One call through the auth centre's breaker; its outcome is reported back to it, and
        its time (a call the breaker refused never started) to `seconds`. `parse` reads the
        answer (OAuth's JSON unless given)."""
        key = origin_of(url)
        try:
            trial = self.breakers.admit(key)
        except CircuitOpen as exc:
            raise UpstreamError("unavailable", "circuit open", exc.retry_after) from None
        answered: bool | None = None  # stays None if cancelled: the trial slot is given back
        started = time.perf_counter()
        try:
            status, raw = await self._fetch(key, method, url, **kwargs)
            answered = status < 500
        except UpstreamError as exc:
            answered = None if exc.kind == "busy" else exc.kind not in TRANSIENT
            raise
        finally:
            self.breakers.record(key, answered, trial=trial)
            if self.seconds is not None:
                self.seconds.labels(call).observe(time.perf_counter() - started)
        return (parse or _parse)(status, raw)

    async def _fetch(self, key: str, method: str, url: str, **kwargs: Any) -> tuple[int, bytes]:
        """Status and body, within one deadline for all of it (slot, connect, send, read)."""
        deadline = asyncio.get_running_loop().time() + self.bounds.deadline
        try:
            async with (
                self.budget.slot(key, deadline),
                asyncio.timeout_at(deadline),
                self.http.stream(method, url, **kwargs) as response,
            ):
                return response.status_code, await self._read(response)
        except NoSlot:
            raise UpstreamError("busy", "no call slot for this auth centre") from None
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise UpstreamError("timeout", type(exc).__name__) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise UpstreamError("unreachable", type(exc).__name__) from exc

    async def _read(self, response: httpx.Response) -> bytes:
        """The body, refused (and the connection dropped) past `max_response_bytes`."""
        limit = self.bounds.max_response_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise UpstreamError("bad_response", f"answer of {declared} bytes")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > limit:
                raise UpstreamError("bad_response", f"answer larger than {limit} bytes")
        return bytes(body)


Parse = Callable[[int, bytes], dict[str, Any]]
"""An answer's status and body read into what the caller needs, or UpstreamError."""


def origin_of(url: str) -> str:
    """The key of an auth centre's budget and breaker: scheme, host and port."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme.lower()}://{(parts.hostname or '')}:{parts.port or ''}"
    except ValueError:  # a port that is not a number: the call itself will fail
        return url


def _parse(status: int, raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the parser
        body = None
    if status >= 500:
        raise UpstreamError("server_error", f"HTTP {status}")
    if status != 200 or not isinstance(body, dict):
        raise _oauth_error(status, body)
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
