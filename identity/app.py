"""`create_app(settings)`: the one place the parts are put together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from http import HTTPStatus
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.telemetry import TelemetryConfig
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from identity import branding, health, pages, scim
from identity.admin import console as admin_console
from identity.admin import local_login, resets
from identity.admin import routes as admin_routes
from identity.admin.throttle import Throttle
from identity.crypto import Cipher, Mac
from identity.db import Database
from identity.directory import tenants
from identity.errors import IdentityError
from identity.headers import SecurityHeaders, security_headers
from identity.marketplace import order_details, v1_routes
from identity.marketplace.routes import router as marketplace_router
from identity.marketplace.service import Marketplace
from identity.notify import build_notifier
from identity.observability import Metrics, RequestObserver, configure_logging
from identity.provider import authorize as provider_authorize
from identity.provider import clients as provider_clients
from identity.provider import logout as provider_logout
from identity.provider import routes as provider_routes
from identity.provider.authorize import AuthorizePage
from identity.provider.documents import Documents
from identity.provider.service import OAuthError, Provider
from identity.seller_key import load_seller_key
from identity.sessions import Sessions, devices
from identity.sessions.service import policy_for
from identity.settings import Settings
from identity.sso import admission
from identity.sso import routes as sso_routes
from identity.sso.refusals import Refusal
from identity.sso.renewal import Renewal
from identity.sso.service import Sso
from identity.sso.upstream import AuthCentre, Bounds
from identity.tenant_hosts import TenantHosts
from identity.web import (
    DATABASE_RETRY_SECONDS,
    by_surface,
    database_outage,
    failed,
    invalid,
    problem,
)

log = structlog.get_logger("identity")

PUBLISHED_PATHS = frozenset(
    {
        "/sso/session",
        "/api/admin/members",
        "/api/admin/members/{user_name}",
        "/api/admin/members/{user_name}/end-sessions",
        "/api/admin/departments",
        "/api/admin/syncs",
        "/api/admin/members/{user_name}/password-resets",
        "/api/admin/password-resets/{reset_id}/confirm",
    }
)
"""The only paths `/openapi.json` describes: the JSON the ISV's front ends call. The marketplace
callbacks (KooGallery's, specified by its contract), the browser pages of the login, the probes
and the metrics are not an API for clients. A new client-facing route is published by adding it
here; anything else stays out of the schema by default."""


NO_OPENTELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
"""identity's own telemetry is its Prometheus metrics and its JSON log lines. FastAPI's bridge
to OpenTelemetry stays off: left on, it looks up OpenTelemetry's global providers on every
request, which cost more than answering a JWKS."""


class _AnsweredFailures:
    """Starlette answers an unhandled exception with the `Exception` handler's response, then
    raises it again for the server to log: uvicorn prints a traceback of hundreds of lines on
    stderr for every failing request. The handler has already logged one JSON line and the
    response has gone out, so the exception stops here."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answered = False

        async def tracking(message: Message) -> None:
            nonlocal answered
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception:
            if not answered:
                raise


class IdentityApp(FastAPI):
    """FastAPI whose security headers and request observer (request id, HTTP metrics) wrap the
    whole stack, the 500 handler included (Starlette runs the `Exception` handler outside any
    middleware added with `add_middleware`). Outside them all, discovery and the JWKS are
    answered when at hand (`identity.provider.documents`). Requests to a tenant host
    (`identity.tenant_hosts`) are sent to the base URL inside the observer and the headers."""

    response_headers: tuple[tuple[bytes, bytes], ...] = ()

    def build_middleware_stack(self) -> ASGIApp:
        stack: ASGIApp = _AnsweredFailures(super().build_middleware_stack())
        settings: Settings = self.state.settings
        if settings.tenant_domain:
            stack = TenantHosts(stack, settings.tenant_domain, settings.base_url)
        observed = RequestObserver(stack, self.state.metrics)
        secured = SecurityHeaders(observed, self.response_headers)
        return Documents(secured, self.state.provider, self.state.metrics, self.response_headers)

    def openapi(self) -> dict[str, Any]:
        """FastAPI's schema (cached by FastAPI) cut down to `PUBLISHED_PATHS`."""
        self.openapi_schema = published(super().openapi(), PUBLISHED_PATHS)
        return self.openapi_schema


def published(schema: dict[str, Any], paths: frozenset[str]) -> dict[str, Any]:
    """The schema with only `paths` and the component schemas they use, directly or not."""
    kept = {path: item for path, item in schema.get("paths", {}).items() if path in paths}
    components = schema.get("components", {}).get("schemas", {})
    used: set[str] = set()
    pending = _refs(kept)
    while pending:
        name = pending.pop()
        if name not in used and name in components:
            used.add(name)
            pending |= _refs(components[name])
    result = {key: value for key, value in schema.items() if key != "components"} | {"paths": kept}
    if used:
        result["components"] = {"schemas": {name: components[name] for name in sorted(used)}}
    return result


def _refs(node: Any) -> set[str]:
    """Names of the component schemas `node` refers to (`#/components/schemas/<name>`)."""
    if isinstance(node, list):
        return set().union(*map(_refs, node)) if node else set()
    if not isinstance(node, dict):
        return set()
    ref = node.get("$ref")
    found = {ref.rsplit("/", 1)[1]} if isinstance(ref, str) else set()
    return found.union(*map(_refs, node.values()))


def create_app(settings: Settings) -> FastAPI:
    if settings.secret_key is None:
        raise RuntimeError("IDENTITY_SECRET_KEY is not set")
    configure_logging(settings.log_level)
    db = Database(settings.database_url)
    metrics = Metrics()
    metrics.watch_pool(db.engine)
    auth_centre = AuthCentre(Bounds.from_settings(settings), metrics.upstream_seconds)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        rules = asyncio.create_task(asyncio.to_thread(devices.load_rules))  # off the loop
        await _warn_of_refused_domains(db, settings)
        yield
        await rules
        app.state.marketplace.verifier.close()
        if app.state.marketplace.order_api is not None:
            await app.state.marketplace.order_api.close()
        await auth_centre.close()
        await db.dispose()

    app = IdentityApp(
        title="identity",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        telemetry=NO_OPENTELEMETRY,
    )
    app.response_headers = tuple(security_headers(settings.base_url))
    app.state.metrics = metrics
    app.state.brand = branding.brand_of(
        settings.brand_name, settings.brand_accent, settings.brand_logo_file
    )
    _put_together(app, settings, db, auth_centre)
    app.router.routes.extend(provider_routes.api)  # first: see identity.provider.routes
    for router in (
        health.router,
        marketplace_router,
        sso_routes.router,
        sso_routes.api,
        sso_routes.site,
        provider_routes.router,
        admin_routes.router,
        admin_console.router,
        local_login.router,
        pages.brand_router,
    ):
        app.include_router(router)
    if settings.marketplace_v1_key and settings.marketplace_v1_key.get_secret_value():
        app.include_router(v1_routes.router)  # the V1 callbacks, for products still on V1
    app.mount("/static", pages.static_files(), name="static")
    app.mount(scim.MOUNT, scim.Mounted(settings))  # the directory for the apps
    _answer_errors(app)
    return app


def _put_together(app: FastAPI, settings: Settings, db: Database, auth_centre: AuthCentre) -> None:
    """The app's parts, each built once with what it needs, on `app.state` (read back only
    through `identity.web`)."""
    assert settings.secret_key is not None
    master = settings.secret_key.get_secret_value()
    cipher = Cipher(master)
    key_file = settings.marketplace_private_key_file
    state = app.state
    state.settings, state.db = settings, db
    state.time_zone = ZoneInfo(settings.time_zone)
    state.marketplace = Marketplace(
        settings=settings,
        cipher=cipher,
        private_key=load_seller_key(key_file) if key_file else None,
        order_api=order_details.api_for(settings),
    )
    renewal = Renewal(db, cipher, auth_centre, state.metrics, policy_for(settings))
    state.sessions = Sessions(settings, db, cipher, admit=admission.admit, renew=renewal.renew)
    state.notifier = build_notifier(settings)
    state.reset_mac = resets.code_mac(master)
    state.local_login_mac = Mac(master, "local-login")
    state.password_throttle = Throttle.from_settings(settings)
    state.provider = Provider(settings, db, cipher, state.sessions)
    state.sso = Sso(
        settings,
        cipher,
        state.metrics,
        state.sessions,
        auth_centre,
        landing=partial(provider_logout.landing, state.provider),
        way_back=provider_authorize.way_back,
        sign_in_links=partial(provider_clients.sign_in_links, db, state.provider.issuer),
    )


def _answer_errors(app: FastAPI) -> None:
    """One handler per error type, never a choice by path: an error only one surface raises is
    answered by that surface's renderer; the admin wing's (shared by the API, the console and
    `/login`) and unexpected failures by the request's surface (`web.Surface`), else as JSON
    `{"error", "message"}`; a 404 is a page for browsers."""

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return sso_routes.not_found(request)
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        return problem(code, str(exc.detail), exc.status_code, exc.headers)

    app.add_exception_handler(Refusal, by_surface(sso_routes.refused))
    app.add_exception_handler(OAuthError, _sync(provider_routes.oauth_error))
    app.add_exception_handler(AuthorizePage, _sync(provider_routes.error_page))
    app.add_exception_handler(IdentityError, by_surface(_identity_error))
    app.add_exception_handler(RequestValidationError, by_surface(_invalid))
    app.add_exception_handler(Exception, by_surface(_failed))


def _identity_error(_request: Request, exc: IdentityError) -> Response:
    return problem(exc.code, exc.message, getattr(exc, "status", 400))


def _invalid(_request: Request, exc: RequestValidationError) -> Response:
    return problem("bad_request", invalid(exc), 422)


def _failed(request: Request, exc: Exception) -> Response:
    """A database outage (503, to retry) or a bug (500): JSON, never details (a page of `/sso`
    answers its own)."""
    failed(request, exc)
    if database_outage(exc):
        retry = {"Retry-After": str(DATABASE_RETRY_SECONDS)}
        return problem("database_unavailable", "the database is unavailable; retry", 503, retry)
    return problem("internal_error", "internal error", 500)


def _sync(answer: Callable[[Request, Any], Response]) -> Callable[..., Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        return answer(request, exc)

    return handle


async def _warn_of_refused_domains(db: Database, settings: Settings) -> None:
    """Name the tenants whose stored auth-centre address would now be refused (they keep
    working until their next tenantSync)."""
    try:
        async with db.read() as session:
            refused = await tenants.refused_domains(
                session, allow_loopback_http=settings.allow_loopback_http
            )
    except Exception as exc:  # the database may be down at start; /readyz reports that
        log.warning("domain_check_skipped", error=type(exc).__name__)
        return
    for tenant_id, reason in refused:
        log.warning("tenant_domain_refused", tenant_id=tenant_id, reason=f"domainName {reason}")
