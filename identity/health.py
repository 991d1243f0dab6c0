"""Probes and metrics for operators: `/healthz`, `/readyz`, `/metrics`."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.exceptions import HTTPException

from identity.web import AppMetrics, AppSettings, Db, problem

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(db: Db) -> JSONResponse:
    """The database answers and is migrated; 503 names the failure's type, never its text."""
    try:
        async with db.read() as session:
            await session.execute(text("SELECT version_num FROM alembic_version"))
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, 503)
    return JSONResponse({"status": "ok"})


@router.get("/metrics")
async def metrics(request: Request, settings: AppSettings, counters: AppMetrics) -> Response:
    """Only for a request bearing `IDENTITY_METRICS_TOKEN`; without a token configured, not
    exposed here at all (404, as if there were no such route): the counters tell tenants' login
    failures and call volumes. `identity serve` answers `/metrics` without a token on
    `IDENTITY_METRICS_PORT`."""
    token = settings.metrics_token
    if token is None or not token.get_secret_value():
        raise HTTPException(404)
    if not _bears(request.headers.get("authorization", ""), token.get_secret_value()):
        headers = {"WWW-Authenticate": "Bearer"}
        return problem("unauthenticated", "metrics need the bearer token", 401, headers)
    return Response(generate_latest(counters.registry), media_type=CONTENT_TYPE_LATEST)


def _bears(authorization: str, token: str) -> bool:
    """`Authorization: Bearer <token>` (RFC 6750 §2.1), compared in constant time."""
    scheme, _, presented = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.encode()
    )
