"""`/sso/*`: login (Flow A and B), the session for front ends, the signed-in page, logout.

Thin: each route reads the cookies and parameters, calls one `Sso` operation, and turns the
result into a redirect, a page or JSON. Every refusal becomes the same bilingual page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from fastapi import APIRouter, Form, Header, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from identity.sso.redirects import LOGIN_COOKIE, LOGIN_TTL_SECONDS, origin
from identity.sso.refusals import Refusal
from identity.sso.service import Sso
from identity.sso.sessions import SignedIn, expires_at

SESSION_COOKIE = "identity_session"
NO_STORE = {"Cache-Control": "no-store"}
# Pages are never framed: a framed sign-out button could be clicked by a hidden overlay.
PAGE_HEADERS = {
    **NO_STORE,
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
}

log = structlog.get_logger("identity.sso")
router = APIRouter(prefix="/sso")
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def _sso(request: Request) -> Sso:
    return request.app.state.sso  # type: ignore[no-any-return]


def _page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers.update(PAGE_HEADERS)
    return response


def refused(request: Request, refusal: Refusal) -> HTMLResponse:
    """The bilingual refusal page; the reason is logged and counted, never a secret."""
    log.warning("sso.refused", reason=refusal.code, detail=refusal.log_detail)
    request.app.state.metrics.sso_logins.labels(refusal.code).inc()
    response = _page(
        request, "refusal.html", refusal.text.status, reason=refusal.code, text=refusal.text
    )
    response.delete_cookie(LOGIN_COOKIE, path="/sso")
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str, **kw: Any) -> None:
    secure = request.app.state.settings.session_cookie_secure
    response.set_cookie(name, value, httponly=True, samesite="lax", secure=secure, **kw)


@router.get("/login", response_model=None)
async def login(
    request: Request, tenant: str | None = None, app: str | None = None, next: str | None = None
) -> Response:
    """Flow B (§5.3). Without `tenant`, ask the member for their enterprise code first."""
    if not tenant:
        return _page(request, "enterprise.html", app=app or "", next=next or "")
    started = await _sso(request).begin(tenant.strip(), app, next)
    response = RedirectResponse(started.authorize_url, status_code=302)
    _set_cookie(
        request,
        response,
        LOGIN_COOKIE,
        started.login_cookie,
        path="/sso",
        max_age=LOGIN_TTL_SECONDS,
    )
    return response


@router.get("/callback/{app_id}", response_model=None)
async def callback(
    request: Request,
    app_id: str,
    code: str | None = None,
    tenant: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> Response:
    """The registered callback (§5.2 step 3, §5.3): code (+tenant, +state in Flow B)."""
    if error:
        raise Refusal("upstream_denied", f"authorize error {error[:64]!r}")
    completed = await _sso(request).complete(
        app_id,
        code=code,
        tenant=tenant,
        state=state,
        login_cookie=request.cookies.get(LOGIN_COOKIE),
        old_raw_session_id=request.cookies.get(SESSION_COOKIE),
    )
    response = RedirectResponse(completed.next, status_code=303)
    response.delete_cookie(LOGIN_COOKIE, path="/sso")
    _set_cookie(request, response, SESSION_COOKIE, completed.raw_session_id, path="/")
    return response


def _describe(sso: Sso, signed_in: SignedIn, raw_id: str) -> dict[str, str]:
    return {
        "tenantId": signed_in.tenant_id,
        "tenantCode": signed_in.tenant_code,
        "appId": signed_in.app_id,
        "userName": signed_in.user_name,
        "name": signed_in.name,
        "role": signed_in.role,
        "orgCode": signed_in.org_code,
        "expiresAt": expires_at(signed_in, sso.policy).isoformat(timespec="seconds") + "Z",
        "csrfToken": sso.csrf_token(raw_id),
    }


@router.get("/session")
async def session(request: Request) -> JSONResponse:
    """The signed-in member as JSON, or 401: for the apps' front ends and for monitoring."""
    raw_id = request.cookies.get(SESSION_COOKIE)
    signed_in = await _sso(request).current(raw_id)
    if signed_in is None or raw_id is None:
        response = JSONResponse(
            {"error": "unauthenticated", "detail": "no valid session"}, 401, headers=NO_STORE
        )
        if raw_id:
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    return JSONResponse(_describe(_sso(request), signed_in, raw_id), headers=NO_STORE)


@router.get("/me")
async def me(request: Request) -> HTMLResponse:
    """The signed-in page: who you are, and a sign-out button."""
    raw_id = request.cookies.get(SESSION_COOKIE)
    signed_in = await _sso(request).current(raw_id)
    if signed_in is None or raw_id is None:
        return _page(request, "signed_out.html", 401)
    return _page(request, "me.html", member=_describe(_sso(request), signed_in, raw_id))


@router.get("/logout")
async def logout_page(request: Request, redirect_url: str | None = None) -> HTMLResponse:
    """Logout needs a POST (CSRF); a GET only asks for confirmation."""
    raw_id = request.cookies.get(SESSION_COOKIE)
    signed_in = await _sso(request).current(raw_id)
    if signed_in is None or raw_id is None:
        return _page(request, "signed_out.html")
    csrf = _sso(request).csrf_token(raw_id)
    return _page(request, "logout.html", csrf=csrf, redirect_url=redirect_url or "")


@router.post("/logout")
async def logout(
    request: Request,
    csrf: str | None = Form(None),
    redirect_url: str | None = Form(None),
    x_csrf_token: str | None = Header(None),
) -> RedirectResponse:
    """End the session, then the auth centre's (§5.2 step 9). Needs the CSRF token (form field
    or `X-CSRF-Token`) and, when the browser sends one, an allowed `Origin`."""
    sso = _sso(request)
    raw_id = request.cookies.get(SESSION_COOKIE)
    sent_origin = request.headers.get("origin")
    if sent_origin and origin(sent_origin) not in sso.allowed_origins:
        raise Refusal("csrf_failed", f"origin {origin(sent_origin)!r}")
    back = redirect_url or request.query_params.get("redirect_url")
    target = await sso.logout(raw_id, csrf or x_csrf_token or "", back)
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/logged-out")
async def logged_out(request: Request) -> HTMLResponse:
    return _page(request, "signed_out.html", logged_out=True)
