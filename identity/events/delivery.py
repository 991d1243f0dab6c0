"""Delivery of the apps' change events (Standard Webhooks), run by `identity worker` beside the
back-channel logouts, with the same rules (identity.provider.backchannel).

Each client has one stream per tenant (`EventStream`): the events it has been sent, in cursor
order, through `delivered_through`. A pass claims one due stream at a time, just before sending,
with a lease longer than a send can take (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one
writer at a time), and records the outcome only while the lease is still its own, so several
workers never send one stream at once and its order holds. Streams are independent of each
other.

The claim fixes the stream's batch (`batch_through`): up to `BATCH` events after
`delivered_through` that concern the client's app. Until it is answered with a 2xx, that batch
is resent whole, under the same `webhook-id`, with the resources read afresh at each attempt
(`identity.events.wire` says what goes on the wire). A failure is tried
again after a delay that doubles from `backchannel_retry_first_seconds` up to
`backchannel_retry_max_seconds`; `backchannel_give_up_hours` after the batch was first sent it
is skipped (counted in `skipped`, logged and counted on the metric) and the stream goes on: the
app catches up by reading the directory (docs/events.md). A worker that dies between sending
and recording leaves the lease to run out and the batch is sent again: receivers dedupe by the
events' ids.

A stream with nothing to send rests until a new event wakes it (`outbox.record`), or `RESTING`
at the latest; so does one whose app may not see the tenant any more (`Sources.visible`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx2 as httpx
import structlog
from prometheus_client import Counter
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db import Database, utcnow
from identity.events import wire
from identity.events.outbox import SUBSCRIBES
from identity.events.wire import Sources
from identity.models import DirectoryEvent, EventCursor, EventStream, OidcClient
from identity.settings import Settings

log = structlog.get_logger("identity.events")
BATCH = 100
"""The most events one request carries."""
SENDS = 20
"""Streams one pass claims at most (each for one batch)."""
LEASE = timedelta(seconds=60)
"""Longer than a send can take: no other worker claims a stream while one is sending it."""
RESTING = timedelta(days=1)
"""How long a stream with nothing to send waits, unless a new event wakes it first: it is then
claimed, found idle and put back to rest, so an idle stream costs one claim a day. A stream
whose app may not see the tenant waits `UNSEEN` between looks."""
UNSEEN = timedelta(hours=1)


@dataclass(frozen=True)
class Batch:
    """A claimed stream's batch: its events are those of the client's app (or of every app)
    in (`after`, `through`]."""

    client: OidcClient
    tenant_id: str
    after: int
    through: int
    attempts: int
    started_at: datetime
    claimed_until: datetime
    """Our lease: the outcome is recorded only while it is still ours."""


_EVENT_COLUMNS = (
    DirectoryEvent.tenant_id,
    DirectoryEvent.cursor,
    DirectoryEvent.type,
    DirectoryEvent.resource_key,
    DirectoryEvent.data,
    DirectoryEvent.created_at,
)


def _concerns(app_id: str) -> Any:
    return or_(DirectoryEvent.app_id.is_(None), DirectoryEvent.app_id == app_id)


_CLAIMABLE = select(EventStream.client_id, EventStream.tenant_id).join(
    OidcClient, OidcClient.client_id == EventStream.client_id
)


async def _claim_one(
    db: Database, now: datetime, lease: timedelta
) -> Batch | Literal[False] | None:
    """The stream due first, leased to this worker from this moment, with its batch fixed.
    None when no stream is due; False when the one claimed had nothing to send (it rests)."""
    due = and_(
        EventStream.next_attempt_at <= now,
        or_(EventStream.claimed_until.is_(None), EventStream.claimed_until < utcnow()),
    )
    async with db.transaction() as session:
        found = (
            await session.execute(
                _CLAIMABLE.where(due, SUBSCRIBES)
                .order_by(EventStream.next_attempt_at)
                .limit(1)
                .with_for_update(of=EventStream, skip_locked=True)
            )
        ).first()
        if found is None:
            return None
        client_id, tenant_id = found
        stream = (
            await session.execute(
                update(EventStream)
                .where(EventStream.client_id == client_id, EventStream.tenant_id == tenant_id, due)
                .values(claimed_until=utcnow() + lease)
                .returning(
                    EventStream.delivered_through,
                    EventStream.batch_through,
                    EventStream.attempts,
                    EventStream.batch_started_at,
                    EventStream.claimed_until,
                )
            )
        ).one_or_none()
        client = await session.get(OidcClient, client_id)
        if stream is None or client is None:
            return None
        after, through, attempts, started_at, claimed_until = stream
        if through is None:
            through = await _fix_batch(session, client, tenant_id, after, now)
            if through is None:
                return False
            attempts, started_at = 0, now
    assert started_at is not None and claimed_until is not None
    return Batch(client, tenant_id, after, through, attempts, started_at, claimed_until)


async def _fix_batch(
    session: AsyncSession, client: OidcClient, tenant_id: str, after: int, now: datetime
) -> int | None:
    """The claimed stream's next batch: through its `BATCH`-th event for the client, or through
    the tenant's last cursor when there are fewer (the events between concern other apps).
    With none, the stream moves past the others' events and rests; None."""
    last = await session.scalar(
        select(EventCursor.cursor).where(EventCursor.tenant_id == tenant_id)
    )
    cursors = (
        await session.scalars(
            select(DirectoryEvent.cursor)
            .where(
                DirectoryEvent.tenant_id == tenant_id,
                DirectoryEvent.cursor > after,
                DirectoryEvent.cursor <= (last or 0),
                _concerns(client.app_id),
            )
            .order_by(DirectoryEvent.cursor)
            .limit(BATCH)
        )
    ).all()
    key = (EventStream.client_id == client.client_id, EventStream.tenant_id == tenant_id)
    if not cursors:
        await session.execute(
            update(EventStream)
            .where(*key)
            .values(
                delivered_through=max(after, last or 0),
                claimed_until=None,
                next_attempt_at=now + RESTING,
            )
        )
        return None
    through = cursors[-1] if len(cursors) == BATCH else max(cursors[-1], last or 0)
    await session.execute(
        update(EventStream)
        .where(*key)
        .values(batch_through=through, batch_started_at=now, attempts=0, last_error=None)
    )
    return through


def retry_at(settings: Settings, since: datetime, attempts: int, now: datetime) -> datetime | None:
    """When to try again after `attempts` failures of something first tried at `since`, or
    None to give up: the back-off of every outbox of ours (back-channel logouts too), a delay
    doubling from `backchannel_retry_first_seconds` up to `backchannel_retry_max_seconds`,
    until `backchannel_give_up_hours`."""
    if now - since >= timedelta(hours=settings.backchannel_give_up_hours):
        return None
    delay = settings.backchannel_retry_first_seconds * 2**attempts
    return now + timedelta(seconds=min(delay, settings.backchannel_retry_max_seconds))


async def deliver_due(
    db: Database,
    settings: Settings,
    http: httpx.AsyncClient,
    sources: Sources,
    now: datetime | None = None,
    lease: timedelta = LEASE,
    stopping: asyncio.Event | None = None,
    failures: Counter | None = None,
) -> dict[str, int]:
    """One pass: send the batches that are due; returns how many batches were delivered,
    retried and given up, and how many events the delivered ones carried. With `stopping` set,
    it claims nothing more: the send under way is finished and recorded first. Each failed
    attempt is counted on `failures` by its outcome (`retried`, `given_up`)."""
    now = now or utcnow()
    counts = {"delivered": 0, "events": 0, "retried": 0, "given_up": 0}
    claims = attempts = 0
    while attempts < SENDS and claims < 5 * SENDS:
        if stopping is not None and stopping.is_set():
            break
        claims += 1
        batch = await _claim_one(db, now, lease)
        if batch is None:
            break
        if batch is False:  # an idle stream, put back to rest: on to the next
            continue
        attempts += 1
        sent, error = await _attempt(db, sources, http, batch)
        outcome, values = _outcome(settings, batch, now, error, sent)
        if await _record(db, batch, values) and outcome is not None:
            counts[outcome] += 1
            if outcome == "delivered":
                counts["events"] += sent
            elif failures is not None:
                failures.labels(outcome).inc()
    return counts


_NOT_VISIBLE = "the app may not see the tenant"


def _outcome(
    settings: Settings, batch: Batch, now: datetime, error: str | None, sent: int
) -> tuple[str | None, dict[str, Any]]:
    """What an attempt that carried `sent` events and ended with `error` (None: a 2xx) does
    to the stream: its outcome (`delivered`, `retried`, `given_up`; None when the app may not
    see the tenant and nothing was sent) and the stream's new values."""
    if error is None:
        return "delivered", _moved_on(batch, now)
    if error == _NOT_VISIBLE:
        return None, {"next_attempt_at": now + UNSEEN, "last_error": error}
    where = {"client_id": batch.client.client_id, "tenant_id": batch.tenant_id}
    retry = retry_at(settings, batch.started_at, batch.attempts, now)
    if retry is None:
        log.error("events.given_up", **where, through=batch.through, events=sent, error=error[:200])
        skipped = {"skipped": EventStream.skipped + sent, "last_error": error[:255]}
        return "given_up", _moved_on(batch, now) | skipped
    log.warning("events.failed", **where, error=error[:200])
    return "retried", {
        "attempts": batch.attempts + 1,
        "last_error": error[:255],
        "next_attempt_at": retry,
    }


def _moved_on(batch: Batch, now: datetime) -> dict[str, Any]:
    """The stream past its batch, due again at once (there may be more)."""
    return {
        "delivered_through": batch.through,
        "batch_through": None,
        "batch_started_at": None,
        "attempts": 0,
        "next_attempt_at": now,
    }


async def _record(db: Database, batch: Batch, values: dict[str, Any]) -> bool:
    """The attempt's outcome, only while the lease is still ours (the lease ends with it);
    False when it was not: the lease ran out and another worker has the stream (it sends the
    batch again)."""
    async with db.transaction() as session:
        done = await session.execute(
            update(EventStream)
            .where(
                EventStream.client_id == batch.client.client_id,
                EventStream.tenant_id == batch.tenant_id,
                EventStream.claimed_until == batch.claimed_until,
            )
            .values(claimed_until=None, **values)
        )
    if not done.rowcount:  # type: ignore[attr-defined]
        log.warning(
            "events.lease_lost", client_id=batch.client.client_id, tenant_id=batch.tenant_id
        )
    return bool(done.rowcount)  # type: ignore[attr-defined]


async def _attempt(
    db: Database, sources: Sources, http: httpx.AsyncClient, batch: Batch
) -> tuple[int, str | None]:
    """Read, render and send the batch: (how many events it holds, what went wrong or None).
    A batch whose events are all gone (past the retention) counts as sent."""
    app_id = batch.client.app_id
    async with db.single_read() as conn:
        if not await sources.visible(conn, batch.tenant_id, app_id):
            return 0, _NOT_VISIBLE
        rows = (
            await conn.execute(
                select(*_EVENT_COLUMNS)
                .where(
                    DirectoryEvent.tenant_id == batch.tenant_id,
                    DirectoryEvent.cursor > batch.after,
                    DirectoryEvent.cursor <= batch.through,
                    _concerns(app_id),
                )
                .order_by(DirectoryEvent.cursor)
            )
        ).all()
        if not rows:
            return 0, None
        events = await wire.render(conn, sources, batch.tenant_id, batch.client.app_id, rows)
    secrets = sources.secrets(batch.client, utcnow())
    uri = batch.client.events_uri
    if not secrets or not uri:
        return len(rows), "no events URI or secret"
    message_id = wire.message_id(batch.tenant_id, rows[0].cursor, rows[-1].cursor)
    return len(rows), await wire.post(http, uri, message_id, secrets, events)
