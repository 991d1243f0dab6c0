"""`/sso/*`: login (Flow A and B), the session for front ends, the signed-in page, logout.

Thin: each route reads the cookies and parameters, calls one `Sso` operation, and turns the
result into a redirect, a page or JSON. Every refusal becomes the same bilingual page, and so
does any unexpected failure of a page (`SsoPage`); `/sso/session`, JSON for programs, is on a
router of its own (`api`), whose unexpected failures are the app's JSON 500.

Every input is checked before use: a control character (NUL above all, which PostgreSQL cannot
store or compare) in any parameter, path segment or cookie of ours is a `bad_request`, the same
on both databases. The client address behind the rate limits is the ASGI `client`, which
uvicorn takes from `X-Forwarded-For` only when the connecting peer is in `FORWARDED_ALLOW_IPS`.
"""

from __future__ import annotations

import math
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

from identity import web
from identity.access import Reason
from identity.pages import render
from identity.sessions import Ending, Seen, Sessions, SignedIn
from identity.sessions.browser import Cookies, origin
from identity.sessions.store import expires_at
from identity.sso import cas, switching
from identity.sso.login_state import LOGIN_TTL_SECONDS
from identity.sso.refusals import ENDINGS, SIGN_IN_AS_SOMEONE_ELSE, Refusal
from identity.sso.service import Completed
from identity.sso.switching import Asked
from identity.web import FormRefused, Surface, holds_control, read_form

NO_STORE = {"Cache-Control": "no-store"}
MAX_LOGOUT_FORM_BYTES = 8 * 1024  # a CSRF token and a redirect_url
MAX_FORM_FIELDS = 16

log = structlog.get_logger("identity.sso")


def _cookies(request: Request) -> Cookies:
    return web.sessions(request).cookies


def _refuse_control_characters(*values: str | None) -> None:
    if holds_control(*values):
        raise Refusal("bad_request", "control character in a parameter")


async def _clean_input(request: Request) -> None:
    """Refuse control characters in the query (names and values), the path and our cookies."""
    query = [part for item in request.query_params.multi_items() for part in item]
    names = _cookies(request)
    cookies = [request.cookies.get(names.session), request.cookies.get(names.login)]
    _refuse_control_characters(*query, *map(str, request.path_params.values()), *cookies)


class SsoPage(Surface):
    """A page of `/sso`: a refusal, or any unexpected failure (logged), is the refusal page
    (`database_unavailable`, 503, when the database cannot be reached)."""

    answers = (Exception,)

    def answer(self, request: Request, error: Exception) -> Response:
        if not isinstance(error, Refusal):
            web.failed(request, error)
            if web.database_outage(error):
                retry = web.DATABASE_RETRY_SECONDS
                error = Refusal("database_unavailable", type(error).__name__, retry_after=retry)
            else:
                error = Refusal("internal_error", type(error).__name__)
        return refused(request, error)


router = APIRouter(prefix="/sso", dependencies=[Depends(_clean_input)], route_class=SsoPage)


class SessionApi(Surface):
    """`/sso/session`, for programs: a refusal (a control character in the input) is JSON."""

    answers = (Refusal,)

    def answer(self, request: Request, error: Exception) -> Response:
        assert isinstance(error, Refusal)
        return web.problem(error.code, error.message, error.text.status, NO_STORE)


api = APIRouter(prefix="/sso", dependencies=[Depends(_clean_input)], route_class=SessionApi)


class SessionProblem(BaseModel):
    """`/sso/session`'s refusal: a control character in a parameter (400), no session (401; the
    first 401 after the marketplace ended it says why, `reason`)."""

    error: str
    message: str
    reason: str | None = None


SESSION_ERRORS = {status: {"model": SessionProblem} for status in (400, 401)}
site = APIRouter(include_in_schema=False)


@site.get("/")
async def home(request: Request) -> HTMLResponse:
    """What this service is, and where to sign in (rather than a JSON 404)."""
    return render(request, "home.html")


def not_found(request: Request) -> Response:
    """An unknown path: a page for browsers, JSON for programs."""
    if "text/html" in request.headers.get("accept", ""):
        return render(request, "not_found.html", 404)
    return web.problem("not_found", "Not Found", 404)


def _client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _seen(request: Request) -> Seen:
    """The browser and address a sign-in comes from, which its session shows the admins."""
    return Seen(request.headers.get("user-agent"), _client_address(request))


def _switch_url(tenant_id: str | None, app_id: str | None, next_: str | None = None) -> str:
    """`/sso/switch` for this enterprise (and app), or "" when the enterprise is not known."""
    if not tenant_id:
        return ""
    query = {"tenant": tenant_id, "app": app_id or "", "next": next_ or ""}
    return "/sso/switch?" + urlencode({key: value for key, value in query.items() if value})


def refused(request: Request, refusal: Refusal) -> HTMLResponse:
    """The bilingual refusal page; the reason is logged and counted, never a secret. When the
    account was refused (not the enterprise), it offers to sign in as someone else; when an
    app's authorization request started the login, to return to the app."""
    log.warning("sso.refused", reason=refusal.code, detail=refusal.log_detail)
    web.metrics(request).sso_logins.labels(refusal.code).inc()
    switch = ""
    if refusal.code in SIGN_IN_AS_SOMEONE_ELSE:
        switch = _switch_url(refusal.tenant_id, refusal.app_id, refusal.next)
    way_back = web.sso(request).way_back
    back = way_back(refusal.next) if way_back and refusal.next else None
    response = render(
        request,
        "refusal.html",
        refusal.text.status,
        reason=refusal.code,
        text=refusal.text,
        switch_url=switch,
        back_url=back or "",
    )
    if refusal.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(refusal.retry_after)))
    if refusal.ends_login:
        cookies = _cookies(request)
        cookies.clear(response, cookies.login, path=cookies.login_path)
    return response


@router.get("/login", response_model=None)
async def login(
    request: Request, tenant: str | None = None, app: str | None = None, next: str | None = None
) -> Response:
    """Flow B (§5.3). Without `tenant`, ask the member for their enterprise code first."""
    if not tenant:
        return render(request, "enterprise.html", app=app or "", next=next or "")
    web.sso(request).throttle(_client_address(request))
    started = await web.sso(request).begin(tenant.strip(), app, next)
    response = RedirectResponse(started.authorize_url, status_code=302)
    cookies = _cookies(request)
    cookies.set(
        response,
        cookies.login,
        started.login_cookie,
        path=cookies.login_path,
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
    web.sso(request).throttle(_client_address(request))
    if error:
        raise Refusal("upstream_denied", f"authorize error {error[:64]!r}")
    names = _cookies(request)
    raw_id = request.cookies.get(names.session)
    completed = await web.sso(request).complete(
        app_id,
        code=code,
        tenant=tenant,
        state=state,
        login_cookie=request.cookies.get(names.login),
        old_raw_session_id=raw_id,
        seen=_seen(request),
    )
    if isinstance(completed, Asked):
        csrf = web.sessions(request).csrf_token(raw_id or "")
        return render(request, "switch.html", asked=completed, csrf=csrf)
    return _signed_in(request, completed)


@router.get("/cas/{app_id}", response_model=None)
async def cas_callback(
    request: Request, app_id: str, ticket: str | None = None, tenant: str | None = None
) -> Response:
    """The enterprise workbench's CAS sign-in: a service ticket for the tenant's member."""
    web.sso(request).throttle(_client_address(request))
    raw_id = request.cookies.get(_cookies(request).session)
    completed = await cas.complete(
        web.sso(request),
        app_id,
        ticket=ticket,
        tenant=tenant,
        raw_query=request.scope["query_string"].decode("latin-1"),
        old_raw_session_id=raw_id,
        seen=_seen(request),
    )
    if isinstance(completed, Asked):
        csrf = web.sessions(request).csrf_token(raw_id or "")
        return render(request, "switch.html", asked=completed, csrf=csrf)
    return _signed_in(request, completed)


def _signed_in(request: Request, completed: Completed) -> Response:
    """On to where the login lands, with the new session's cookie (and no login cookie)."""
    cookies = _cookies(request)
    response = RedirectResponse(completed.next, status_code=303)
    cookies.clear(response, cookies.login, path=cookies.login_path)
    cookies.set_session(response, completed.raw_session_id)
    return response


@router.post("/continue")
async def continue_as(request: Request) -> Response:
    """The answer "continue as …" to the page a Flow A callback showed a browser signed in as
    someone else (`switching`): the session's CSRF token and the pending login, from an
    allowed `Origin` when the browser sends one."""
    _check_origin(request)
    form = await _form(request, web.sso(request).switch_form_bytes)
    raw_id = request.cookies.get(_cookies(request).session)
    completed = await switching.confirm(
        web.sso(request), raw_id, form.get("csrf", ""), form.get("pending", ""), _seen(request)
    )
    return _signed_in(request, completed)


def _describe(sessions: Sessions, signed_in: SignedIn, raw_id: str) -> dict[str, str]:
    return {
        "tenantId": signed_in.tenant_id,
        "tenantCode": signed_in.tenant_code,
        "appId": signed_in.app_id,
        "userName": signed_in.user_name,
        "name": signed_in.name,
        "role": signed_in.role,
        "orgCode": signed_in.org_code,
        "expiresAt": expires_at(signed_in, sessions.policy).isoformat(timespec="seconds") + "Z",
        "csrfToken": sessions.csrf_token(raw_id),
    }


@api.get("/session", responses=SESSION_ERRORS)  # type: ignore[arg-type]
async def session(
    request: Request, sessions: web.AppSessions, app: str | None = None
) -> JSONResponse:
    """The signed-in member as JSON, or 401: for the apps' front ends and for monitoring.
    With `app`, as that app sees the session (401 when the session does not hold it). When the
    marketplace ended the session, the first 401 after says why (`reason`)."""
    raw_id = request.cookies.get(sessions.cookies.session)
    signed_in = await sessions.current(raw_id, app)
    if signed_in is None or raw_id is None:
        ending = await sessions.ending(raw_id) if app is None else None
        why = {"reason": ending.reason} if ending is not None else {}
        response = web.problem("unauthenticated", "no valid session", 401, NO_STORE, **why)
        if raw_id and app is None:
            _cookies(request).clear_session(response)
        return response
    return JSONResponse(_describe(sessions, signed_in, raw_id), headers=NO_STORE)


async def _signed_out(request: Request, raw_id: str | None, status: int = 200) -> HTMLResponse:
    """No session: why it ended, once, when the marketplace ended it; else "not signed in"."""
    ending = await web.sessions(request).ending(raw_id)
    if ending is None:
        response = render(request, "signed_out.html", status)
    else:
        response = _ended(request, ending)
    if raw_id:
        _cookies(request).clear_session(response)
    return response


def _ended(request: Request, ending: Ending) -> HTMLResponse:
    zh, en = ENDINGS[Reason(ending.reason)]
    member_level = ending.reason in SIGN_IN_AS_SOMEONE_ELSE
    return render(
        request,
        "session_ended.html",
        401,
        zh=zh,
        en=en,
        reason=ending.reason,
        switch_url=_switch_url(ending.tenant_id, ending.app_id) if member_level else "",
    )


@router.get("/me")
async def me(request: Request, sessions: web.AppSessions) -> HTMLResponse:
    """The signed-in page: who you are, the apps you may use (each with where its sign-in
    starts, when known), and a sign-out button."""
    raw_id = request.cookies.get(sessions.cookies.session)
    signed_in = await sessions.current(raw_id)
    if signed_in is None or raw_id is None:
        return await _signed_out(request, raw_id, 401)
    profile = await web.sso(request).profile(signed_in)
    apps = await web.sso(request).apps(signed_in)
    return render(
        request,
        "me.html",
        member=signed_in,
        profile=profile,
        apps=apps,
        expires=expires_at(signed_in, sessions.policy),
        csrf=sessions.csrf_token(raw_id),
    )


@router.get("/logout")
async def logout_page(
    request: Request, sessions: web.AppSessions, redirect_url: str | None = None
) -> HTMLResponse:
    """Logout needs a POST (CSRF); a GET only asks for confirmation, with a way back."""
    raw_id = request.cookies.get(sessions.cookies.session)
    signed_in = await sessions.current(raw_id)
    if signed_in is None or raw_id is None:
        return await _signed_out(request, raw_id)
    csrf = sessions.csrf_token(raw_id)
    return render(request, "logout.html", csrf=csrf, redirect_url=redirect_url or "")


@router.get("/switch")
async def switch(
    request: Request, tenant: str | None = None, app: str | None = None, next: str | None = None
) -> RedirectResponse:
    """Sign in as someone else in the same enterprise: through the auth centre's logout (it
    forgets the account it remembers), then Flow B again. Ends no session of ours (a GET must
    not), so it needs no CSRF token: the auth centre's logout is a plain link anyway."""
    if not tenant:
        return RedirectResponse("/sso/login", 303)
    web.sso(request).throttle(_client_address(request))
    return RedirectResponse(await web.sso(request).switch_account(tenant.strip(), app, next), 303)


async def _form(request: Request, max_bytes: int) -> dict[str, str]:
    """A form of ours (`read_form`), or no body at all (a front end sending the `X-CSRF-Token`
    header to logout); a refused form is the refusal page."""
    try:
        return await read_form(
            request, max_bytes=max_bytes, max_fields=MAX_FORM_FIELDS, bodiless=True
        )
    except FormRefused as exc:
        raise Refusal(exc.code, exc.message) from None


def _check_origin(request: Request) -> None:
    """A browser's POST from a page of a foreign origin is refused (CSRF)."""
    sent_origin = request.headers.get("origin")
    if sent_origin and origin(sent_origin) not in web.sessions(request).allowed_origins:
        raise Refusal("csrf_failed", f"origin {origin(sent_origin)!r}")


@router.post("/logout")
async def logout(request: Request, x_csrf_token: str | None = Header(None)) -> RedirectResponse:
    """End the session, then the auth centre's (§5.2 step 9). Needs the CSRF token (form field
    or `X-CSRF-Token`) and, when the browser sends one, an allowed `Origin`."""
    sso = web.sso(request)
    raw_id = request.cookies.get(_cookies(request).session)
    _check_origin(request)
    form = await _form(request, MAX_LOGOUT_FORM_BYTES)
    back = form.get("redirect_url") or request.query_params.get("redirect_url")
    target = await sso.logout(raw_id, form.get("csrf") or x_csrf_token or "", back)
    response = RedirectResponse(target, status_code=303)
    _cookies(request).clear_session(response)
    return response


@router.get("/logged-out")
async def logged_out(request: Request) -> HTMLResponse:
    return render(request, "signed_out.html", logged_out=True)
