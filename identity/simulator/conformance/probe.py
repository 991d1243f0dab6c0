"""The kit's own auth centre, and the sign-in probe that shows who the endpoint lets in.

Whether a sync took effect cannot be seen in its answer: `000000` is also the right answer to a
sync that must be ignored (an older one, a debug one). So the kit plays the tenant's auth centre
too (the simulator's, `authcentre.create_auth_centre`, serving the run's scenario) and gives its
address as the tenant's `domainName` (§3.1). To ask "is this member let in now?", it issues an
authorization code for the member, as the auth centre would after a password login, and opens
the endpoint's registered callback with `code` and `tenant` (§5.2 step 3), as a browser with no
cookies would, without following redirects. The endpoint then redeems the code at this auth
centre and reads userinfo (§5.2 steps 5-6), which answer for the member whatever their state:
refusing is the endpoint's job (§3.3: "must fail login even if the IdP still issues a token").

The rule, with a probe URL (a page of the endpoint that needs a signed-in session):
- **admitted**: with the cookies the callback set, a GET of the probe URL (redirects not
  followed) answers 2xx, and the code was redeemed before the callback answered;
- **refused**: the probe URL answers 3xx or 4xx (a redirect to the login page, 401, 403);
- anything else (no answer, a 5xx, a 2xx without the code redeemed) is neither, and fails
  either expectation. A probe URL that answers 2xx without any cookie cannot tell, and every
  probe fails saying so.

Without one, from the callback's answer alone, ignoring the cookies that a refusal sets too
(the kit opens the callback once with a code it never issued and notes their names: a flash
message, a framework's session saved on every request):
- **admitted**: a status below 400 that sets another cookie with a value (not one being
  deleted: no `Max-Age` of 0 or less, no `Expires` in the past), and the code was redeemed;
- **refused**: a status of 400 or more, or an answer that sets no such cookie (a redirect to
  an error page);
- anything else (no answer, or a cookie set without redeeming the code) is neither.

The same server answers the marketplace's query-order API (`order_api`) with the run's orders,
for an endpoint configured to ask it (§4.2), and notes which orders were asked for.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx2 as httpx
from fastapi import FastAPI, Request, Response

from identity.marketplace.orders import QUERY_PATH, AccessKey
from identity.simulator.authcentre import create_auth_centre
from identity.simulator.oauth import Grant
from identity.simulator.order_api import DEMO_KEY
from identity.simulator.scenario import MemberSpec, Scenario, TenantSpec

ADMITTED, REFUSED = "admitted", "refused"


@dataclass(frozen=True)
class SignIn:
    """What the endpoint's callback did with a fresh code for one member."""

    status: int | None
    cookies: tuple[str, ...] = ()
    """The names of the cookies the callback set (not deleted), but for those in `ignored`."""
    redeemed: bool = False
    probe_status: int | None = None
    """With a probe URL: its status, asked with the callback's cookies."""
    ignored: tuple[str, ...] = ()
    """Cookies a refusal sets too (no probe URL): they say nothing."""
    seconds: float = 0.0
    error: str | None = None

    @property
    def verdict(self) -> str | None:
        if self.error is not None:
            return None
        if self.probe_status is not None:
            if 200 <= self.probe_status < 300:
                return ADMITTED if self.redeemed else None
            return REFUSED if 300 <= self.probe_status < 500 else None
        if self.status is None or self.status >= 400 or not self.cookies:
            return REFUSED
        return ADMITTED if self.redeemed else None

    def summary(self) -> str:
        if self.error is not None:
            return self.error
        code = "the code redeemed" if self.redeemed else "the code not redeemed"
        if self.probe_status is not None:
            seen = f"the probe URL HTTP {self.probe_status}"
        else:
            seen = f"cookies set: {', '.join(self.cookies)}" if self.cookies else "no cookie set"
            if self.ignored:
                seen += f" (ignoring {', '.join(self.ignored)}: a refusal sets them too)"
        return f"{self.verdict or 'unclear'}: HTTP {self.status}, {seen}, {code}"


def live_cookie(set_cookie: str, now: datetime) -> bool:
    """A `Set-Cookie` that gives a cookie a value, rather than deleting it."""
    first, *attributes = set_cookie.split(";")
    name, sep, value = first.partition("=")
    if not sep or not name.strip() or not value.strip().strip('"'):
        return False
    for attribute in attributes:
        key, _, given = attribute.partition("=")
        key = key.strip().lower()
        try:
            if key == "max-age" and int(given.strip()) <= 0:
                return False
            if key == "expires" and parsedate_to_datetime(given.strip()) <= now:
                return False
        except (TypeError, ValueError):
            continue
    return True


def live_cookies(response: httpx.Response) -> set[str]:
    """The names of the cookies an answer sets with a value."""
    now = datetime.now(UTC)
    return {
        header.split("=", 1)[0].strip()
        for header in response.headers.get_list("set-cookie")
        if live_cookie(header, now)
    }


@dataclass
class AuthCentre:
    """The auth centre and order API on `host:port` (0: any free port), for one run."""

    scenario: Scenario
    callback: str | None
    """The endpoint's registered callback (§5.1), where probes go; None: no probes."""
    host: str = "127.0.0.1"
    port: int = 0
    public_url: str | None = None
    """Its address as the endpoint reaches it, when not http://host:port (a tunnel, a proxy)."""
    order_key: AccessKey = DEMO_KEY
    time_limit: float = 20.0
    probe_url: str | None = None
    """A page of the endpoint that answers 2xx only to a signed-in session; None: the cookies."""
    order_queries: list[tuple[str, str, int]] = field(default_factory=list)
    """(orderId, orderLineId, HTTP status) of every query-order request, in order."""
    app: FastAPI = field(init=False)
    url: str = field(init=False, default="")
    _task: asyncio.Task[None] | None = field(init=False, default=None)
    _server: Any = field(init=False, default=None)
    _refusal_cookies: frozenset[str] | None = field(init=False, default=None)
    _unusable_probe: str | None = field(init=False, default=None)
    _probe_checked: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.callback or "http://127.0.0.1")
        self.app = create_auth_centre(
            self.scenario,
            callback_base=f"{parts.scheme}://{parts.netloc}",
            order_key=self.order_key,
        )
        queries = self.order_queries

        @self.app.middleware("http")
        async def note_order_queries(request: Request, call_next: Any) -> Response:
            response: Response = await call_next(request)
            if request.url.path == QUERY_PATH:
                params = request.query_params
                queries.append(
                    (params.get("orderId", ""), params.get("orderLineId", ""), response.status_code)
                )
            return response

    async def __aenter__(self) -> AuthCentre:
        import uvicorn

        listener = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        port = listener.getsockname()[1]
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = (self.public_url or f"http://{shown}:{port}").rstrip("/")
        config = uvicorn.Config(self.app, log_level="error", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[listener]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # the reason it could not start
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task

    def asked_for(self, order_id: str, order_line_id: str) -> list[int]:
        """The HTTP statuses the order API answered to queries for one order line."""
        return [s for o, line, s in self.order_queries if (o, line) == (order_id, order_line_id)]

    async def sign_in(self, tenant: TenantSpec, member: MemberSpec) -> SignIn:
        """The probe: a fresh code for `member` to the callback, from a browser without cookies
        (then, with a probe URL, that page with the cookies the callback set)."""
        assert self.callback is not None
        try:
            ignored = await self._baseline(tenant)
        except httpx.HTTPError as exc:
            return SignIn(None, error=_no_answer("the probe URL", exc, self.time_limit))
        if self._unusable_probe is not None:
            return SignIn(None, error=self._unusable_probe)
        issuer = self.app.state.centre.issuer
        redeemed_before = issuer.stats.grants["authorization_code"]
        code = issuer.issue_code(
            Grant(tenant.tenant_id, member.user_name, tenant.client_id), self.callback
        )
        started = time.perf_counter()
        async with httpx.AsyncClient(follow_redirects=False, timeout=self.time_limit) as fresh:
            try:
                response = await fresh.get(self._callback_url(code, tenant))
            except httpx.HTTPError as exc:
                return SignIn(None, error=_no_answer("the callback", exc, self.time_limit))
            redeemed = issuer.stats.grants["authorization_code"] > redeemed_before
            probe_status = None
            if self.probe_url is not None:
                try:
                    probe_status = (await fresh.get(self.probe_url)).status_code
                except httpx.HTTPError as exc:
                    return SignIn(None, error=_no_answer("the probe URL", exc, self.time_limit))
        return SignIn(
            response.status_code,
            cookies=tuple(sorted(live_cookies(response) - ignored)),
            redeemed=redeemed,
            probe_status=probe_status,
            ignored=tuple(sorted(ignored & live_cookies(response))),
            seconds=time.perf_counter() - started,
        )

    def _callback_url(self, code: str, tenant: TenantSpec) -> str:
        assert self.callback is not None
        joiner = "&" if "?" in self.callback else "?"
        return f"{self.callback}{joiner}{urlencode({'code': code, 'tenant': tenant.tenant_id})}"

    async def _baseline(self, tenant: TenantSpec) -> frozenset[str]:
        """Once a run, what a refusal looks like: with a probe URL, that it answers other than
        2xx without cookies; without one, the cookies the callback sets for a code never
        issued (which say nothing, then)."""
        async with httpx.AsyncClient(follow_redirects=False, timeout=self.time_limit) as fresh:
            if self.probe_url is not None:
                if not self._probe_checked:
                    status = (await fresh.get(self.probe_url)).status_code
                    self._probe_checked = True
                    if 200 <= status < 300:
                        self._unusable_probe = (
                            f"the probe URL answered HTTP {status} without any cookie: it "
                            "cannot tell a signed-in member from anyone"
                        )
                return frozenset()
            if self._refusal_cookies is None:
                try:
                    refusal = await fresh.get(self._callback_url(secrets.token_urlsafe(24), tenant))
                    self._refusal_cookies = frozenset(live_cookies(refusal))
                except httpx.HTTPError:
                    self._refusal_cookies = frozenset()  # the probes themselves will say so
            return self._refusal_cookies


def _no_answer(what: str, exc: httpx.HTTPError, time_limit: float) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"{what} gave no answer in {time_limit:g} s"
    return f"{what} gave no answer: {type(exc).__name__} {exc}"
