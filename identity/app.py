"""`create_app(settings)`: the one place the parts are put together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from identity.crypto import Cipher
from identity.db import Database
from identity.marketplace.client_secret import load_private_key
from identity.marketplace.routes import router as marketplace_router
from identity.marketplace.service import Marketplace
from identity.observability import Metrics, configure_logging
from identity.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    if settings.secret_key is None:
        raise RuntimeError("IDENTITY_SECRET_KEY is not set")
    configure_logging(settings.log_level)
    db = Database(settings.database_url)
    private_key = (
        load_private_key(settings.marketplace_private_key_file)
        if settings.marketplace_private_key_file
        else None
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await db.dispose()

    app = FastAPI(title="identity", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.db = db
    app.state.metrics = Metrics()
    app.state.marketplace = Marketplace(
        settings=settings,
        cipher=Cipher(settings.secret_key.get_secret_value()),
        private_key=private_key,
    )
    app.include_router(marketplace_router)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        try:
            async with request.app.state.db.transaction() as session:
                await session.execute(text("SELECT 1"))
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, 503)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        return Response(
            generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
        )

    return app
