"""`identity worker`: the periodic housekeeping jobs.

Each pass deletes what may go: sessions past their idle or absolute timeout, nonces older than
the nonce TTL (contract §2.4), marketplace audit rows older than `IDENTITY_RETENTION_DAYS`, and
outbox rows once delivered or older than that. Deletes run in small batches, each its own short
transaction, so the worker never holds SQLite's write lock for long. A delete of rows another
replica already deleted simply deletes nothing, so any number of workers may run at once.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import ColumnElement, delete, or_, select

from identity.db import Database, utcnow
from identity.models import AccessRevocation, MarketplaceCall, Nonce
from identity.models import Session as MemberSession
from identity.settings import Settings

log = structlog.get_logger("identity.worker")
BATCH = 1000


def _expired(settings: Settings, now: datetime) -> dict[str, tuple[Any, ColumnElement[bool]]]:
    retention = now - timedelta(days=settings.retention_days)
    idle = now - timedelta(seconds=settings.session_idle_seconds)
    return {
        "sessions": (
            MemberSession.id_hash,
            or_(MemberSession.expires_at <= now, MemberSession.last_seen_at <= idle),
        ),
        "nonces": (
            Nonce.nonce,
            Nonce.seen_at < now - timedelta(seconds=settings.nonce_ttl_seconds),
        ),
        "marketplace_calls": (MarketplaceCall.id, MarketplaceCall.received_at < retention),
        # An outbox row has done its work once delivered; one never delivered is useless past
        # the retention period (every token it could concern has long expired).
        "access_revocations": (
            AccessRevocation.id,
            or_(
                AccessRevocation.delivered_at.is_not(None),
                AccessRevocation.created_at < retention,
            ),
        ),
    }


async def purge(db: Database, settings: Settings, now: datetime | None = None) -> dict[str, int]:
    """One pass; returns how many rows each table lost."""
    now = now or utcnow()
    counts: dict[str, int] = {}
    for name, (key, condition) in _expired(settings, now).items():
        table = key.class_
        counts[name] = 0
        while True:
            batch = select(key).where(condition).limit(BATCH)
            async with db.transaction() as session:
                result = await session.execute(delete(table).where(key.in_(batch)))
            deleted = int(result.rowcount)  # type: ignore[attr-defined]
            counts[name] += deleted
            if deleted < BATCH:
                break
    return counts


async def run(settings: Settings, *, once: bool = False) -> None:
    db = Database(settings.database_url)
    try:
        while True:
            try:
                counts = await purge(db, settings)
                log.info("worker.purged", **counts)
            except Exception as exc:  # a database outage must not kill the loop
                log.error("worker.failed", error=type(exc).__name__)
                if once:
                    raise
            if once:
                return
            await asyncio.sleep(settings.worker_interval_seconds)
    finally:
        await db.dispose()
