"""Probes and metrics for operators: `/healthz`, `/readyz`, `/metrics`."""

from __future__ import annotations

import asyncio
import hmac
from datetime import timedelta

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text
from starlette.exceptions import HTTPException

from identity.db import Database, utcnow
from identity.models import LogoutDelivery, MemberSession
from identity.observability import Metrics
from identity.settings import Settings
from identity.web import AppMetrics, AppSettings, Db, problem

router = APIRouter()
COUNT_SECONDS = 2.0
"""How long a scrape waits for the database's counts before leaving them out."""


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
async def metrics(
    request: Request, db: Db, settings: AppSettings, counters: AppMetrics
) -> Response:
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
    return Response(await exposition(db, settings, counters), media_type=CONTENT_TYPE_LATEST)


async def exposition(db: Database, settings: Settings, metrics: Metrics) -> bytes:
    """The registry in Prometheus's text format, the database's gauges counted first: two
    counts per scrape, none per request. When the database does not answer in time they are
    left out (`/readyz` says why)."""
    try:
        async with asyncio.timeout(COUNT_SECONDS):
            metrics.database.values = await _counts(db, settings)
    except Exception:
        metrics.database.values = {}
    return generate_latest(metrics.registry)


async def _counts(db: Database, settings: Settings) -> dict[str, float]:
    now = utcnow()
    idle = now - timedelta(seconds=settings.session_idle_seconds)
    live = (MemberSession.expires_at > now) & (MemberSession.last_seen_at > idle)
    queued = LogoutDelivery.delivered_at.is_(None) & LogoutDelivery.given_up_at.is_(None)
    async with db.single_read() as conn:
        sessions = await conn.scalar(select(func.count()).select_from(MemberSession).where(live))
        pending = await conn.scalar(select(func.count()).select_from(LogoutDelivery).where(queued))
    return {
        "identity_sessions_active": float(sessions or 0),
        "identity_backchannel_outbox_pending": float(pending or 0),
    }


def _bears(authorization: str, token: str) -> bool:
    """`Authorization: Bearer <token>` (RFC 6750 §2.1), compared in constant time."""
    scheme, _, presented = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.encode()
    )
