"""The OpenID Provider's endpoints, all published by discovery (docs/provider.md). Thin: each
reads the request, calls one `Provider` operation and renders JSON, a redirect or a page.

Its errors are answered by their type, one handler each (`create_app` registers them): an
`OAuthError` as RFC 6749 §5.2 JSON, an `AuthorizePage` as the error page for the person."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from identity import web
from identity.pages import render
from identity.provider import authorize as authorization
from identity.provider import logout
from identity.provider.authorize import AuthorizePage
from identity.provider.documents import (
    DISCOVERY_CACHE,
    JWKS_CACHE,
    JWKS_CHECKED_WITHIN,
    etag_of,
    not_modified,
)
from identity.provider.service import (
    OAuthError,
    Provider,
    parameters,
)
from identity.web import FormRefused, holds_control, read_form

router = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
MAX_FORM_BYTES = 16 * 1024
MAX_FORM_FIELDS = 32
Oidc = Annotated[Provider, web.depends(web.provider)]


def error_page(request: Request, page: AuthorizePage) -> HTMLResponse:
    """A refused request that must not go back to the app: a page for the person."""
    return render(request, "authorize_error.html", 400, description=page.description)


def oauth_error(_request: Request, exc: OAuthError) -> JSONResponse:
    """RFC 6749 §5.2 (and RFC 6750 §3 for a bearer token): `error`, `error_description`."""
    headers = dict(NO_STORE)
    if exc.status == 401:
        scheme = "Bearer" if exc.error == "invalid_token" else "Basic"
        headers["WWW-Authenticate"] = f'{scheme} realm="identity", error="{exc.error}"'
    body = {"error": exc.error, "error_description": exc.description}
    return JSONResponse(body, exc.status, headers=headers)


async def _form(request: Request) -> dict[str, str]:
    """A small URL-encoded form (RFC 6749 §3.2), each parameter once, nothing else."""
    try:
        return await read_form(request, max_bytes=MAX_FORM_BYTES, max_fields=MAX_FORM_FIELDS)
    except FormRefused as exc:
        raise OAuthError("invalid_request", exc.message) from None


# --- the apps' endpoints -------------------------------------------------------------------
# Called by the apps' servers, often, and answered with JSON (or a static document): plain
# Starlette routes, ahead of every router (`create_app` puts them first). FastAPI's route
# machinery (dependency solving, the nested routers' matching) cost more than the work of a
# JWKS or an introspection; what the whole app has stays: the security headers, the request
# observer, the error handlers (an `OAuthError` raised here is answered by `oauth_error`).


async def discovery(request: Request) -> Response:
    return document(request, web.provider(request).discovery_json, DISCOVERY_CACHE)


async def jwks(request: Request) -> Response:
    """The keys in force: a key revoked is gone from this answer within a second, on every
    replica."""
    provider = web.provider(request)
    published = await provider.keys_in_force(checked_within=JWKS_CHECKED_WITHIN)
    return document(request, published.jwks_json, JWKS_CACHE)


def document(request: Request, body: bytes, cache_control: str) -> Response:
    """A JSON document that changes rarely, sent as serialised once, with an ETag: a client
    that sends it back in `If-None-Match` gets 304 and no body (RFC 9110 §13.1.2). What
    `Documents` answers without coming here, answered the same way."""
    etag = etag_of(body)
    headers = {"Cache-Control": cache_control, "ETag": etag}
    if not_modified(etag, request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


async def token(request: Request) -> Response:
    form = await _form(request)
    issued = await web.provider(request).token(form, request.headers.get("authorization"))
    return JSONResponse(issued, headers=NO_STORE)


async def userinfo(request: Request) -> Response:
    claims = await web.provider(request).userinfo(request.headers.get("authorization"))
    return JSONResponse(claims, headers=NO_STORE)


async def introspect(request: Request) -> Response:
    form = await _form(request)
    provider = web.provider(request)
    answer = await provider.introspect(form, request.headers.get("authorization"))
    return JSONResponse(answer, headers=NO_STORE)


async def revoke(request: Request) -> Response:
    form = await _form(request)
    await web.provider(request).revoke(form, request.headers.get("authorization"))
    return Response(status_code=200, headers=NO_STORE)


class _Route(Route):
    """A Starlette route that names itself in the scope, as FastAPI's do: the request observer
    labels its metrics with the route's template."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self
        await super().handle(scope, receive, send)


api = [
    _Route("/.well-known/openid-configuration", discovery, methods=["GET"]),
    _Route("/oauth2/jwks", jwks, methods=["GET"]),
    _Route("/oauth2/token", token, methods=["POST"]),
    _Route("/oauth2/userinfo", userinfo, methods=["GET", "POST"]),
    _Route("/oauth2/introspect", introspect, methods=["POST"]),
    _Route("/oauth2/revoke", revoke, methods=["POST"]),
]


# --- the browser's endpoints ----------------------------------------------------------------


def _checked(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """A query's parameters, none holding a control character, none repeated (RFC 6749 §3.1)."""
    for name, value in pairs:
        if holds_control(name, value):
            raise AuthorizePage(f"parameter {name[:32]!r} holds a control character")
    form, repeated = parameters(pairs)
    if repeated:
        raise AuthorizePage(f"parameter {repeated[0]} is repeated")
    return form


@router.get("/oauth2/authorize", response_model=None)
async def authorize(request: Request, provider: Oidc) -> Response:
    """Signed in for the client's app: back to the app with a code. Not yet: through the
    marketplace login for the tenant and the app, then here again (no second click)."""
    pairs = request.query_params.multi_items()
    parsed, problem = await authorization.parse(provider, pairs)
    if problem:
        return RedirectResponse(authorization.error_redirect(provider, parsed, *problem), 302)
    raw_id = request.cookies.get(provider.sessions.cookies.session)
    return RedirectResponse(await authorization.answer(provider, parsed, dict(pairs), raw_id), 302)


@router.get(authorization.DENIED_PATH, response_model=None)
async def denied(request: Request, provider: Oidc) -> Response:
    """ "Return to the app" on a refusal page: the authorization request the refused login was
    for, answered with `access_denied` (RFC 6749 §4.1.2.1), checked like any other."""
    parsed, problem = await authorization.parse(provider, request.query_params.multi_items())
    error = problem or ("access_denied", authorization.REFUSED)
    return RedirectResponse(authorization.error_redirect(provider, parsed, *error), 303)


@router.api_route("/oauth2/logout", methods=["GET", "POST"], response_model=None)
async def rp_logout(request: Request, provider: Oidc) -> Response:
    """RP-Initiated Logout 1.0: end the member's session here and at the auth centre, then
    back to the app's registered post-logout URI. GET, or a POSTed form (§2), checked alike."""
    raw_id = request.cookies.get(provider.sessions.cookies.session)
    params = await _end_session_parameters(request)
    ended = await logout.rp_initiated_logout(provider, params, raw_id)
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
    if request.method != "POST":
        return _checked(request.query_params.multi_items())
    try:
        return await read_form(request, max_bytes=MAX_FORM_BYTES, max_fields=MAX_FORM_FIELDS)
    except FormRefused as exc:
        raise AuthorizePage(exc.message) from None
