"""A tenant auth centre shaped like Huawei OneAccess, at the paths of contract §5.

One auth centre serves every tenant of the scenario; its URL is what the sender gives identity as
each tenant's `domainName` (§3.1). Paths:

- `GET /api/v1/oauth2/authorize` (Flow B, §5.3): the login form, or at once a 302 to the
  registered callback with `code`, `state` (when given) and `tenant` when the browser already
  has an SSO session for a member of the client's tenant. Bad parameters get an HTML 400, never
  a redirect (RFC 6749 §4.1.2.1: an unchecked redirect_uri must not be followed).
- `GET /unified-login/portal-login?ind=UNOP&appId=…` (Flow A, §5.2 steps 1-3): the unified
  login. The real page is an SPA route (`/unified-login/#/portal-login`); a fragment never
  reaches a server, so here it is a plain path. It redirects with `code` and `tenant`, never
  `state`. An existing SSO session redirects at once, as an SSO portal does.
- `POST /api/v1/login`: the form's target. It does not look at the member's `enable` or
  `authorised` flags: identity must refuse those itself (§3.3: "must fail login even if the IdP
  still issues a token"). A member whose password must change (an initial or reset one, §6)
  is asked for a new one first (`console.first_sign_in`), then sent on.
- `POST /api/v1/oauth2/token`, `GET /api/v1/oauth2/userinfo` (§5.2 steps 5, 6, 8): see `oauth`.
- `GET /api/v1/logout?redirect_url=…` (§5.2 step 9): ends the SSO session; 302 to
  `redirect_url` (http or https only: no `javascript:` redirects) or to the login page.
- `GET|POST /api/v1/cas/p3/login`, `GET /api/v1/cas/p3/serviceValidate`: CAS 3.0, see `cas`.
- `/console…`: the buyer's console, where the enterprise administrator changes the world
  the auth centre serves and the marketplace syncs it to identity (`console`, §6).
- `/_sim/…`: simulator-only test hooks (stats, revoke a member's tokens, inject failures);
  OneAccess has nothing like them. `/healthz` says the process is up.

Every part reads the world it serves from one `World` (scenario.py), which the console replaces
on each change: a member added there signs in at once, one deleted no longer can (their SSO
sessions and tokens end with them).

The SSO cookie is `sim_sso` (HttpOnly, SameSite=Lax, not Secure: the simulator runs on plain
http). Cookies ignore ports, so it must not share identity's cookie name on 127.0.0.1.

A little past the ~400 lines other modules keep to: the OAuth flows' pages and endpoints read
best together; the CAS login (`cas`) and the order API (`order_api`) live in modules of their
own, and the next endpoint should too.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from identity.marketplace.orders import AccessKey
from identity.simulator import oauth, order_api, pages
from identity.simulator.console import first_sign_in
from identity.simulator.oauth import Failures, Grant, Issuer, Lifetimes, OAuthError
from identity.simulator.order_api import DEMO_KEY, OrderDesk
from identity.simulator.scenario import (
    MemberSpec,
    Scenario,
    ScenarioError,
    TenantSpec,
    World,
)

if TYPE_CHECKING:
    from identity.simulator.console.state import ConsoleSetup

SSO_COOKIE = "sim_sso"
AUTHORIZE_PATH = "/api/v1/oauth2/authorize"
TOKEN_PATH = "/api/v1/oauth2/token"  # noqa: S105 - a path
USERINFO_PATH = "/api/v1/oauth2/userinfo"
LOGIN_PATH = "/api/v1/login"
LOGOUT_PATH = "/api/v1/logout"
UNIFIED_LOGIN_PATH = "/unified-login/portal-login"
WRONG_PASSWORD = "账号或密码错误 / Wrong account or password"  # noqa: S105 - a message

router = APIRouter()


@dataclass(frozen=True)
class Centre:
    world: World
    issuer: Issuer
    callback: str
    """The callback registered for the app: `{identity}/sso/callback/{appId}` (§5.1)."""
    failures: Failures
    other_callbacks: frozenset[str] = frozenset()
    """Those of the scenario's other apps."""

    @property
    def scenario(self) -> Scenario:
        """The world as it is now: read it afresh for each request, never keep it."""
        return self.world.scenario

    @property
    def login_page_url(self) -> str:
        return f"{UNIFIED_LOGIN_PATH}?{urlencode({'ind': 'UNOP', 'appId': self.scenario.app_id})}"


def create_auth_centre(
    scenario: Scenario | World,
    *,
    callback_base: str,
    code_seconds: float = 60,
    access_token_seconds: int = 7200,
    refresh_token_seconds: int = 30 * 86400,
    clock: Callable[[], float] = time.time,
    order_key: AccessKey = DEMO_KEY,
    console: ConsoleSetup | None = None,
) -> FastAPI:
    """The auth centre as an ASGI app; `callback_base` is identity's base URL. It also serves
    the marketplace's query-order API (`order_api`), to callers signing with `order_key`, and
    with `console` the buyer's console (`console.routes`), timed by `clock` as well."""
    world = scenario if isinstance(scenario, World) else World(scenario)
    scenario = world.scenario
    lifetimes = Lifetimes(code_seconds, access_token_seconds, refresh_token_seconds)
    app = FastAPI(
        title="KooGallery simulator: auth centre", docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.centre = Centre(
        world=world,
        issuer=Issuer(world, lifetimes, clock),
        callback=f"{callback_base.rstrip('/')}/sso/callback/{scenario.app_id}",
        failures=Failures(),
        other_callbacks=frozenset(
            f"{callback_base.rstrip('/')}/sso/callback/{app}" for app in scenario.other_app_ids
        ),
    )
    app.state.order_desk = OrderDesk(world, order_key)
    app.include_router(router)
    app.include_router(order_api.router)
    first_sign_in.install(app, world, clock)
    from identity.simulator import cas  # it builds on this module: imported here, not above

    cas.install(app, app.state.centre, callback_base)
    if console is not None:
        from identity.simulator.console import routes

        routes.install(app, app.state.centre.issuer, console)
    return app


def _centre(request: Request) -> Centre:
    centre: Centre = request.app.state.centre
    return centre


class PageError(Exception):
    def __init__(self, title: str, message: str) -> None:
        super().__init__(message)
        self.title, self.message = title, message


def _bad_request(exc: PageError) -> HTMLResponse:
    return HTMLResponse(pages.error_page(exc.title, exc.message), status_code=400)


# --- where a successful login goes ----------------------------------------------------------


@dataclass(frozen=True)
class LoginTarget:
    """Flow B: the checked authorize parameters. Flow A: the app's registered callback."""

    hidden: dict[str, str]
    redirect_uri: str
    client_id: str | None
    """Flow B's client; None in Flow A, where the member's tenant names the client."""
    state: str | None = None

    def admits(self, tenant: TenantSpec) -> bool:
        return self.client_id is None or tenant.client_id == self.client_id

    def redirect(self, centre: Centre, tenant: TenantSpec, member: MemberSpec) -> str:
        client_id = self.client_id or tenant.client_id
        code = centre.issuer.issue_code(
            Grant(tenant.tenant_id, member.user_name, client_id), self.redirect_uri
        )
        query = {"code": code}
        if self.state:
            query["state"] = self.state
        query["tenant"] = tenant.tenant_id
        joiner = "&" if "?" in self.redirect_uri else "?"
        return f"{self.redirect_uri}{joiner}{urlencode(query)}"


def _authorize_target(centre: Centre, params: Mapping[str, str]) -> LoginTarget:
    """Check the §5.3 authorize parameters; anything wrong is an error page, not a redirect."""
    client_id = params.get("client_id", "")
    if not centre.scenario.tenants_of_client(client_id):
        raise PageError("无效的应用 / Unknown client", f"client_id {client_id!r} is not registered")
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri != centre.callback and redirect_uri not in centre.other_callbacks:
        raise PageError(
            "回调地址不匹配 / Redirect URI mismatch",
            f"redirect_uri must be the registered callback {centre.callback}",
        )
    if params.get("response_type") != "code":
        raise PageError(
            "不支持的响应类型 / Unsupported response type", "response_type must be code"
        )
    names = ("response_type", "client_id", "redirect_uri", "scope", "state")
    hidden = {n: params[n] for n in names if params.get(n)}
    return LoginTarget(hidden, redirect_uri, client_id, params.get("state") or None)


def _unified_target(centre: Centre, params: Mapping[str, str]) -> LoginTarget:
    """Check `ind=UNOP&appId=…` (§5.2 step 1): both are mandatory."""
    if params.get("ind") != "UNOP" or params.get("appId") != centre.scenario.app_id:
        raise PageError(
            "无效的登录链接 / Invalid login link",
            f"expected ind=UNOP and appId={centre.scenario.app_id}",
        )
    return LoginTarget({"ind": "UNOP", "appId": centre.scenario.app_id}, centre.callback, None)


def _login_form(target: LoginTarget, status: int = 200, **shown: str) -> HTMLResponse:
    page = pages.login_page(action=LOGIN_PATH, hidden=target.hidden, **shown)
    return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store"})


def signed_in(centre: Centre, request: Request) -> tuple[TenantSpec, MemberSpec] | None:
    held = centre.issuer.session(request.cookies.get(SSO_COOKIE))
    return None if held is None else find_member(centre.scenario, *held)


def find_member(
    scenario: Scenario, tenant_id: str, user_name: str
) -> tuple[TenantSpec, MemberSpec] | None:
    """The member as the world holds them now, or None once the console deleted them."""
    try:
        tenant = scenario.tenant(tenant_id)
        return tenant, tenant.member(user_name)
    except ScenarioError:
        return None


async def _start(
    request: Request, target: Callable[[Centre, Mapping[str, str]], LoginTarget]
) -> Response:
    centre = _centre(request)
    try:
        login = target(centre, request.query_params)
    except PageError as exc:
        return _bad_request(exc)
    held = signed_in(centre, request)
    if held is not None and login.admits(held[0]):
        return RedirectResponse(login.redirect(centre, *held), status_code=302)
    return _login_form(login)


@router.get(AUTHORIZE_PATH)
async def authorize(request: Request) -> Response:
    return await _start(request, _authorize_target)


@router.get(UNIFIED_LOGIN_PATH)
async def unified_login(request: Request) -> Response:
    return await _start(request, _unified_target)


# --- the login form --------------------------------------------------------------------------


def check_password(
    scenario: Scenario, username: str, password: str
) -> tuple[TenantSpec, MemberSpec] | None:
    """`account@tenantCode` and the member's password (§0.1, §5.2 step 2)."""
    account, _, code = username.strip().rpartition("@")
    tenant = next((t for t in scenario.tenants if t.tenant_code == code), None)
    member = next((m for m in tenant.members if m.user_name == account), None) if tenant else None
    expected = member.password if member else "\x00"
    matches = hmac.compare_digest(expected.encode(), password.encode())
    return (tenant, member) if tenant and member and matches else None


@router.post(LOGIN_PATH)
async def login(request: Request) -> Response:
    centre = _centre(request)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    try:
        flow_b = "client_id" in form or "response_type" in form
        target = (_authorize_target if flow_b else _unified_target)(centre, form)
    except PageError as exc:
        return _bad_request(exc)
    username = form.get("username", "")
    found = check_password(centre.scenario, username, form.get("password", ""))
    if found is None:
        return _login_form(target, 401, username=username, error=WRONG_PASSWORD)
    tenant, member = found
    if not target.admits(tenant):
        error = "该账号的企业未使用此应用 / This account's enterprise does not use this app"
        return _login_form(target, 401, username=username, error=error)

    def finish(request: Request, tenant: TenantSpec, member: MemberSpec) -> Response:
        response = RedirectResponse(target.redirect(centre, tenant, member), status_code=302)
        start_sso(centre, request, response, tenant, member)
        return response

    if member.must_change_password:
        return first_sign_in.ask(request, tenant, member, form.get("password", ""), finish)
    return finish(request, tenant, member)


def start_sso(
    centre: Centre, request: Request, response: Response, tenant: TenantSpec, member: MemberSpec
) -> None:
    """Replace the browser's SSO session, if any, by one for `member` (the `sim_sso` cookie)."""
    centre.issuer.end_session(request.cookies.get(SSO_COOKIE))
    session_id = centre.issuer.start_session(tenant.tenant_id, member.user_name)
    response.set_cookie(SSO_COOKIE, session_id, httponly=True, samesite="lax", secure=False)


@router.get(LOGOUT_PATH)
async def logout(request: Request, redirect_url: str | None = None) -> Response:
    """§5.2 step 9: a 302 with no body, to `redirect_url` or to the login page."""
    centre = _centre(request)
    if redirect_url and urlsplit(redirect_url).scheme not in ("http", "https"):
        return _bad_request(PageError("无效的跳转地址 / Invalid redirect", "redirect_url"))
    centre.issuer.end_session(request.cookies.get(SSO_COOKIE))
    response = Response(
        status_code=302, headers={"Location": redirect_url or centre.login_page_url}
    )
    response.delete_cookie(SSO_COOKIE, httponly=True, samesite="lax")
    return response


# --- token and userinfo ----------------------------------------------------------------------


def _oauth_json(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _injected(centre: Centre) -> JSONResponse | None:
    status = centre.failures.take()
    if status is None:
        return None
    return _oauth_json({"error": "server_error", "error_description": "simulated failure"}, status)


@router.post(TOKEN_PATH)
async def token(request: Request) -> JSONResponse:
    """§5.2 steps 5 and 8; the client is authenticated before the grant is looked at."""
    centre = _centre(request)
    issuer = centre.issuer
    failed = _injected(centre)
    if failed is not None:
        issuer.stats.token_errors += 1
        return failed
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    client_id, client_secret = oauth.client_credentials(request.headers.get("authorization"), form)
    try:
        issuer.authenticate_client(client_id, client_secret)
        return _oauth_json(issuer.grant(client_id, form))
    except OAuthError as exc:
        issuer.stats.token_errors += 1
        return _oauth_json(exc.body, exc.status)


@router.get(USERINFO_PATH)
async def userinfo(request: Request) -> JSONResponse:
    centre = _centre(request)
    issuer = centre.issuer
    issuer.stats.userinfo += 1
    failed = _injected(centre)
    if failed is not None:
        issuer.stats.userinfo_errors += 1
        return failed
    try:
        grant = issuer.bearer(request.headers.get("authorization"))
        found = find_member(centre.scenario, grant.tenant_id, grant.user_name)
        if found is None:  # deleted in the console since the token was issued
            raise oauth.unauthorized()
    except OAuthError as exc:
        issuer.stats.userinfo_errors += 1
        headers = {"WWW-Authenticate": 'Bearer realm="oauth2-resource"'}
        return JSONResponse(exc.body, exc.status, headers=headers)
    return JSONResponse(oauth.userinfo(*found))


# --- simulator-only ---------------------------------------------------------------------------


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/_sim/stats")
async def stats(request: Request) -> dict[str, Any]:
    """Token grants issued by grant_type, error answers, userinfo calls (test hook)."""
    return _centre(request).issuer.stats.as_json()


@router.post("/_sim/revoke")
async def revoke(request: Request, userName: str, tenantId: str) -> JSONResponse:  # noqa: N803
    """Invalidate one member's access and refresh tokens, so a renewal fails (test hook)."""
    centre = _centre(request)
    try:
        tenant = centre.scenario.tenant(tenantId)
        tenant.member(userName)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, 404)
    return JSONResponse({"revoked": centre.issuer.revoke(tenant.tenant_id, userName)})


@router.post("/_sim/fail")
async def fail(request: Request, status: int = 503, count: int = 1) -> JSONResponse:
    """The next `count` token/userinfo calls answer `status` (test hook; count=0 clears)."""
    if not 400 <= status <= 599 or count < 0:
        return JSONResponse({"error": "status must be 400-599 and count >= 0"}, 400)
    failures = _centre(request).failures
    failures.status, failures.remaining = status, count
    return JSONResponse({"status": status, "count": count})
