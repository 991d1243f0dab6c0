"""`create_app(settings)`: the one place the parts are put together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from identity import health
from identity.crypto import Cipher
from identity.db import Database
from identity.directory import tenants
from identity.marketplace.client_secret import load_private_key
from identity.marketplace.routes import router as marketplace_router
from identity.marketplace.service import Marketplace
from identity.observability import Metrics, configure_logging
from identity.settings import Settings
from identity.sso import routes as sso_routes
from identity.sso.refusals import Refusal
from identity.sso.service import Sso

log = structlog.get_logger("identity")


def create_app(settings: Settings) -> FastAPI:
    if settings.secret_key is None:
        raise RuntimeError("IDENTITY_SECRET_KEY is not set")
    configure_logging(settings.log_level)
    db = Database(settings.database_url)
    key_file = settings.marketplace_private_key_file

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await _warn_of_refused_domains(db, settings)
        yield
        app.state.marketplace.verifier.close()
        await app.state.sso.auth_centre.close()
        await db.dispose()

    app = FastAPI(title="identity", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.db = db
    app.state.metrics = Metrics()
    cipher = Cipher(settings.secret_key.get_secret_value())
    app.state.marketplace = Marketplace(
        settings=settings,
        cipher=cipher,
        private_key=load_private_key(key_file) if key_file else None,
    )
    app.state.sso = Sso(settings, db, cipher, app.state.metrics)
    app.include_router(health.router)
    app.include_router(marketplace_router)
    app.include_router(sso_routes.router)

    @app.exception_handler(Refusal)
    async def _refused(request: Request, exc: Refusal) -> HTMLResponse:
        return sso_routes.refused(request, exc)

    @app.exception_handler(Exception)
    async def _failed(request: Request, exc: Exception) -> Response:
        """A database outage or a bug: a page for people, JSON for programs; never details."""
        log.error("request_failed", path=request.url.path, error=type(exc).__name__)
        if request.url.path.startswith("/sso/") and request.url.path != "/sso/session":
            return sso_routes.refused(request, Refusal("internal_error", type(exc).__name__))
        return JSONResponse({"error": "internal_error", "detail": "internal error"}, 500)

    return app


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
