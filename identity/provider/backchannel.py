"""Back-channel logout delivery (OpenID Connect Back-Channel Logout 1.0), run by the worker.

`identity.access.end_sessions` queues one `LogoutDelivery` per ended session and client, in
the transaction that ends the session. Each pass here claims one due row at a time, just
before sending it, with a lease longer than a send can take (`FOR UPDATE SKIP LOCKED` on
PostgreSQL; SQLite has one writer at a time), and records the outcome only while the lease is
still its own, so that several workers never send the same logout. Each attempt is a new
logout token (a fresh `jti`), POSTed as the form field `logout_token`; a 2xx answer ends it.
Otherwise it is tried again after a delay that doubles from `backchannel_retry_first_seconds` up to
`backchannel_retry_max_seconds`, until `backchannel_give_up_hours` after it was queued. A worker
that dies after sending and before recording it leaves the lease to run out, so a logout may,
rarely, arrive twice: receivers must be idempotent (the spec asks it of them, §2.8).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx2 as httpx
import structlog
from prometheus_client import Counter
from sqlalchemy import and_, or_, select, update

from identity.crypto import Cipher
from identity.db import Database, utcnow
from identity.events.delivery import retry_at
from identity.models import LogoutDelivery
from identity.provider import keys
from identity.provider.tokens import Subjects, logout_token
from identity.settings import Settings

log = structlog.get_logger("identity.backchannel")
BATCH = 20
"""Rows one pass sends, each claimed just before it is sent."""
SEND_DEADLINE_SECONDS = 10.0
LEASE = timedelta(seconds=60)
"""Longer than a send can take: no other worker claims a row while one is sending it."""


@dataclass(frozen=True)
class Due:
    id: int
    client_id: str
    uri: str
    sid: str
    tenant_id: str
    user_name: str
    attempts: int
    created_at: datetime
    claimed_until: datetime
    """Our lease: the row is recorded only while it is still ours."""


async def _claim_one(db: Database, now: datetime, lease: timedelta) -> Due | None:
    """The oldest row due at `now`, leased to this worker from this moment for longer than one
    send can take."""
    pending = and_(
        LogoutDelivery.delivered_at.is_(None),
        LogoutDelivery.given_up_at.is_(None),
        LogoutDelivery.next_attempt_at <= now,
        or_(LogoutDelivery.claimed_until.is_(None), LogoutDelivery.claimed_until < utcnow()),
    )
    async with db.transaction() as session:
        found = await session.scalar(
            select(LogoutDelivery.id)
            .where(pending)
            .order_by(LogoutDelivery.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if found is None:
            return None
        row = (
            await session.execute(
                update(LogoutDelivery)
                .where(LogoutDelivery.id == found, pending)
                .values(claimed_until=utcnow() + lease)
                .returning(
                    LogoutDelivery.id,
                    LogoutDelivery.client_id,
                    LogoutDelivery.uri,
                    LogoutDelivery.sid,
                    LogoutDelivery.tenant_id,
                    LogoutDelivery.user_name,
                    LogoutDelivery.attempts,
                    LogoutDelivery.created_at,
                    LogoutDelivery.claimed_until,
                )
            )
        ).one_or_none()
    return None if row is None else Due(**row._asdict())


async def deliver_due(
    db: Database,
    settings: Settings,
    http: httpx.AsyncClient,
    now: datetime | None = None,
    lease: timedelta = LEASE,
    stopping: asyncio.Event | None = None,
    failures: Counter | None = None,
) -> dict[str, int]:
    """One pass: send what is due; returns how many were delivered, retried and given up.
    With `stopping` set, it claims nothing more: the send under way is finished and recorded
    first, so no delivery is left leased by a worker that has gone. Each failed attempt is
    counted on `failures` by its outcome (`retried`, `given_up`)."""
    now = now or utcnow()
    counts = {"delivered": 0, "retried": 0, "given_up": 0}
    if settings.secret_key is None:  # nothing can be signed: leave the logouts queued
        log.warning("backchannel.disabled", reason="IDENTITY_SECRET_KEY is not set")
        return counts
    subjects = Subjects(settings.secret_key.get_secret_value())
    published: keys.Published | None = None
    issuer = settings.base_url.rstrip("/")
    for _ in range(BATCH):
        if stopping is not None and stopping.is_set():
            break
        due = await _claim_one(db, now, lease)
        if due is None:
            break
        published = published or await _keys(db, settings)
        sub = subjects.sub(due.tenant_id, due.user_name)
        token = logout_token(published, issuer, due.client_id, due.sid, sub)
        error = await _post(http, due.uri, token)
        values: dict[str, object] = {"claimed_until": None, "attempts": due.attempts + 1}
        if error is None:
            values["delivered_at"] = utcnow()
            counts["delivered"] += 1
        else:
            retry = retry_at(settings, due.created_at, due.attempts, now)
            values |= {"last_error": error[:255]}
            values |= {"next_attempt_at": retry} if retry else {"given_up_at": utcnow()}
            outcome = "retried" if retry else "given_up"
            counts[outcome] += 1
            if failures is not None:
                failures.labels(outcome).inc()
            log.warning(
                "backchannel.failed",
                tenant_id=due.tenant_id,
                client_id=due.client_id,
                error=error[:200],
            )
        async with db.transaction() as session:
            await session.execute(
                update(LogoutDelivery)
                .where(
                    LogoutDelivery.id == due.id,
                    LogoutDelivery.claimed_until == due.claimed_until,
                )
                .values(**values)
            )
    return counts


async def _keys(db: Database, settings: Settings) -> keys.Published:
    assert settings.secret_key is not None
    cipher = Cipher(settings.secret_key.get_secret_value())
    lifetime = timedelta(seconds=settings.access_token_seconds)
    async with db.transaction() as session:
        await keys.ensure(session, cipher, utcnow(), lifetime)
        return keys.load(await keys.rows(session), cipher, utcnow(), lifetime)


async def _post(http: httpx.AsyncClient, uri: str, token: str) -> str | None:
    """None on a 2xx answer, else what went wrong (never the token). One deadline for all of
    it, well inside the lease."""
    try:
        async with asyncio.timeout(SEND_DEADLINE_SECONDS):
            response = await http.post(
                uri, data={"logout_token": token}, headers={"Cache-Control": "no-store"}
            )
    except TimeoutError:
        return "timeout"
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
