"""The OpenID Provider's endpoints, all published by discovery (docs/provider.md). Thin: each
reads the request, calls one `Provider` operation and renders JSON, a redirect or a page."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from identity.pages import render
from identity.provider import authorize as authorization
from identity.provider import logout
from identity.provider.authorize import AuthorizePage
from identity.provider.service import (
    KEYS_REFRESH_SECONDS,
    OAuthError,
    Provider,
    parameters,
)
from identity.web import holds_control

router = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
MAX_FORM_BYTES = 16 * 1024
JWKS_MAX_AGE = KEYS_REFRESH_SECONDS
"""As long as a replica may take to publish a rotated key, so a cached JWKS is at most that
much staler; a revoked key leaves every replica's answer at once."""


def _provider(request: Request) -> Provider:
    return request.app.state.provider  # type: ignore[no-any-return]


def _page(request: Request, description: str) -> HTMLResponse:
    """A refused request that must not go back to the app: a page for the person."""
    return render(request, "authorize_error.html", 400, description=description)


def _error(exc: OAuthError) -> JSONResponse:
    headers = dict(NO_STORE)
    if exc.status == 401:
        scheme = "Bearer" if exc.error == "invalid_token" else "Basic"
        headers["WWW-Authenticate"] = f'{scheme} realm="identity", error="{exc.error}"'
    body = {"error": exc.error, "error_description": exc.description}
    return JSONResponse(body, exc.status, headers=headers)


async def _form(request: Request) -> dict[str, str]:
    """A small URL-encoded form (RFC 6749 §3.2), nothing else."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "send an application/x-www-form-urlencoded body")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise OAuthError("invalid_request", "the form is too large")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=32)
    except ValueError:
        raise OAuthError("invalid_request", "the form cannot be read") from None
    return _checked(pairs)


def _checked(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The parameters, none holding a control character, none repeated (RFC 6749 §3.2)."""
    for name, value in pairs:
        if holds_control(name, value):
            raise OAuthError(
                "invalid_request", f"parameter {name[:32]!r} holds a control character"
            )
    form, repeated = parameters(pairs)
    if repeated:
        raise OAuthError("invalid_request", f"parameter {repeated[0]} is repeated")
    return form


@router.get("/.well-known/openid-configuration")
async def discovery(request: Request) -> JSONResponse:
    return JSONResponse(_provider(request).discovery())


@router.get("/oauth2/jwks")
async def jwks(request: Request) -> JSONResponse:
    """The keys in force: a key revoked is gone from this answer within a second, on every
    replica; caches may keep an answer `JWKS_MAX_AGE` seconds."""
    published = await _provider(request).keys_in_force(checked_within=1)
    cache = f"public, max-age={JWKS_MAX_AGE}"
    return JSONResponse(published.jwks, headers={"Cache-Control": cache})


@router.get("/oauth2/authorize", response_model=None)
async def authorize(request: Request) -> Response:
    """Signed in for the client's app: back to the app with a code. Not yet: through the
    marketplace login for the tenant and the app, then here again (no second click)."""
    provider = _provider(request)
    pairs = request.query_params.multi_items()
    try:
        parsed, problem = await authorization.parse(provider, pairs)
    except AuthorizePage as page:
        return _page(request, page.description)
    if problem:
        return RedirectResponse(authorization.error_redirect(provider, parsed, *problem), 302)
    raw_id = request.cookies.get(provider.sessions.cookies.session)
    return RedirectResponse(await authorization.answer(provider, parsed, dict(pairs), raw_id), 302)


@router.get(authorization.DENIED_PATH, response_model=None)
async def denied(request: Request) -> Response:
    """ "Return to the app" on a refusal page: the authorization request the refused login was
    for, answered with `access_denied` (RFC 6749 §4.1.2.1), checked like any other."""
    provider = _provider(request)
    try:
        parsed, problem = await authorization.parse(provider, request.query_params.multi_items())
    except AuthorizePage as page:
        return _page(request, page.description)
    error = problem or ("access_denied", authorization.REFUSED)
    return RedirectResponse(authorization.error_redirect(provider, parsed, *error), 303)


@router.post("/oauth2/token")
async def token(request: Request) -> JSONResponse:
    try:
        form = await _form(request)
        issued = await _provider(request).token(form, request.headers.get("authorization"))
    except OAuthError as exc:
        return _error(exc)
    return JSONResponse(issued, headers=NO_STORE)


@router.api_route("/oauth2/userinfo", methods=["GET", "POST"])
async def userinfo(request: Request) -> JSONResponse:
    try:
        claims = await _provider(request).userinfo(request.headers.get("authorization"))
    except OAuthError as exc:
        return _error(exc)
    return JSONResponse(claims, headers=NO_STORE)


@router.post("/oauth2/introspect")
async def introspect(request: Request) -> JSONResponse:
    try:
        form = await _form(request)
        answer = await _provider(request).introspect(form, request.headers.get("authorization"))
    except OAuthError as exc:
        return _error(exc)
    return JSONResponse(answer, headers=NO_STORE)


@router.post("/oauth2/revoke")
async def revoke(request: Request) -> Response:
    try:
        form = await _form(request)
        await _provider(request).revoke(form, request.headers.get("authorization"))
    except OAuthError as exc:
        return _error(exc)
    return Response(status_code=200, headers=NO_STORE)


@router.api_route("/oauth2/logout", methods=["GET", "POST"], response_model=None)
async def rp_logout(request: Request) -> Response:
    """RP-Initiated Logout 1.0: end the member's session here and at the auth centre, then
    back to the app's registered post-logout URI. GET, or a POSTed form (§2), checked alike."""
    provider = _provider(request)
    raw_id = request.cookies.get(provider.sessions.cookies.session)
    try:
        params = await _end_session_parameters(request)
        ended = await logout.rp_initiated_logout(provider, params, raw_id)
    except AuthorizePage as page:
        return _page(request, page.description)
    if request.method == "POST" and raw_id is None and params.get("id_token_hint"):
        # A form posted from the app's site brings no SameSite=Lax cookie: the same request as
        # a top-level GET brings it, so the browser's own session can be told apart.
        return RedirectResponse(f"{request.url.path}?{urlencode(params)}", 303)
    response = RedirectResponse(ended.location, 303)
    if ended.clear_cookie:
        provider.sessions.cookies.clear_session(response)
    return response


async def _end_session_parameters(request: Request) -> dict[str, str]:
    """The query of a GET, the form of a POST; a refusal is a page for the person."""
    try:
        if request.method == "POST":
            return await _form(request)
        return _checked(request.query_params.multi_items())
    except OAuthError as exc:
        raise AuthorizePage(exc.description) from None
