"""`identity worker`: the periodic housekeeping jobs.

It sends the back-channel logouts that are due (identity.provider.backchannel) and the apps'
change events (identity.events.delivery), every few seconds, and asks again for the orders of
instances whose newInstance could not confirm them (identity.marketplace.order_details), when an
access key for the order API is configured.
Each purge ends sessions past their idle or absolute timeout (their apps are told),
and deletes nonces older than the nonce TTL (contract §2.4), marketplace audit rows and
access-revocation audit rows older than `IDENTITY_RETENTION_DAYS`, finished back-channel
deliveries older than that, change events older than that (by age alone: every stream has sent
or given up on them within `IDENTITY_BACKCHANNEL_GIVE_UP_HOURS` of being able to), authorization
codes an hour after they expired, and local sign-in tries from an address a day after its last
one (or, for an address the member signed in from, after `IDENTITY_RETENTION_DAYS`).
Deletes run in small batches, each its own short transaction, so the worker never holds
SQLite's write lock for long. A delete of rows another replica already deleted simply deletes
nothing, so any number of workers may run at once.

SIGTERM or SIGINT stops it cleanly: the logout or batch of events being sent is finished and
recorded, nothing more is claimed, the purge stops between batches, and the process exits 0,
well inside a container's grace period (one send is bounded by
`backchannel.SEND_DEADLINE_SECONDS`, `delivery.SEND_DEADLINE_SECONDS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import httpx2 as httpx
import structlog
from sqlalchemy import ColumnElement, delete, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from identity.access import end_sessions
from identity.admin import lockout
from identity.crypto import Cipher
from identity.db import Database, utcnow
from identity.directory import eligibility
from identity.events import delivery, wire
from identity.marketplace import order_details
from identity.models import (
    AccessRevocation,
    AppCredential,
    DirectoryEvent,
    LocalPasswordTry,
    LogoutDelivery,
    MarketplaceCall,
    MemberSession,
    Nonce,
    OidcCode,
    PasswordReset,
    SessionEnding,
    Tenant,
)
from identity.observability import WorkerMetrics
from identity.provider import backchannel, clients
from identity.provider.tokens import Subjects
from identity.settings import Settings

log = structlog.get_logger("identity.worker")
BATCH = 1000


Expired = dict[str, tuple[Any, ColumnElement[bool]]]
"""Each table's key (a column, or a tuple of them) and which of its rows have expired."""


def _expired(settings: Settings, now: datetime) -> Expired:
    retention = now - timedelta(days=settings.retention_days)
    return {
        "nonces": (
            Nonce.nonce,
            Nonce.seen_at < now - timedelta(seconds=settings.nonce_ttl_seconds),
        ),
        "marketplace_calls": (MarketplaceCall.id, MarketplaceCall.received_at < retention),
        "access_revocations": (AccessRevocation.id, AccessRevocation.created_at < retention),
        "logout_deliveries": (
            LogoutDelivery.id,
            or_(LogoutDelivery.delivered_at.is_not(None), LogoutDelivery.given_up_at.is_not(None))
            & (LogoutDelivery.created_at < retention),
        ),
        "directory_events": (
            (DirectoryEvent.tenant_id, DirectoryEvent.cursor),
            DirectoryEvent.created_at < retention,
        ),
        "oidc_codes": (OidcCode.code_hash, OidcCode.expires_at < now - timedelta(hours=1)),
        # The limits count a day back at most; older resets are only history.
        "password_resets": (
            PasswordReset.reset_id,
            PasswordReset.created_at < min(retention, now - timedelta(days=2)),
        ),
        # Past the session's own expiry its browser would be signed out anyway.
        "session_endings": (SessionEnding.id_hash, SessionEnding.expires_at < now),
        # Tries from an address the member never signed in from matter only while they can
        # lock it out; an address the member signed in from is kept as long as the audit.
        "local_password_tries": (
            LocalPasswordTry.id,
            or_(
                LocalPasswordTry.signed_in_at.is_(None)
                & (LocalPasswordTry.last_try_at < now - lockout.UNKNOWN_KEPT),
                LocalPasswordTry.last_try_at < retention,
            ),
        ),
    }


async def purge(
    db: Database,
    settings: Settings,
    now: datetime | None = None,
    stopping: asyncio.Event | None = None,
) -> dict[str, int]:
    """One pass; returns how many rows each table lost. With `stopping` set, it ends after the
    batch it is deleting (the next pass goes on from there)."""
    now = now or utcnow()
    counts = {"sessions": await _end_expired_sessions(db, settings, now)}
    for name, (key, condition) in _expired(settings, now).items():
        columns: Sequence[Any] = key if isinstance(key, tuple) else (key,)
        table, keyed = columns[0].class_, tuple_(*columns) if len(columns) > 1 else key
        counts[name] = 0
        while not (stopping and stopping.is_set()):
            batch = select(*columns).where(condition).limit(BATCH)
            async with db.transaction() as session:
                result = await session.execute(delete(table).where(keyed.in_(batch)))
            deleted = int(result.rowcount)  # type: ignore[attr-defined]
            counts[name] += deleted
            if deleted < BATCH:
                break
    return counts


async def _end_expired_sessions(db: Database, settings: Settings, now: datetime) -> int:
    """Sessions past their idle or absolute timeout end like any other (`end_sessions`): their
    apps hear of it by back-channel logout."""
    idle = now - timedelta(seconds=settings.session_idle_seconds)
    expired = select(MemberSession.sid).where(
        or_(MemberSession.expires_at <= now, MemberSession.last_seen_at <= idle)
    )
    ended = 0
    while True:
        async with db.transaction() as session:
            sids = list((await session.scalars(expired.limit(BATCH))).all())
            await end_sessions(session, sids, reason="expired")
        ended += len(sids)
        if len(sids) < BATCH:
            return ended


async def run(
    settings: Settings, *, once: bool = False, metrics: WorkerMetrics | None = None
) -> None:
    """Purge every `worker_interval_seconds`; send back-channel logouts and change events every
    `backchannel_poll_seconds`, so a retry is never much later than it is due. Failed
    deliveries are counted on `metrics`. Until SIGTERM or SIGINT (see the module's
    docstring)."""
    failures = metrics.backchannel_failures if metrics else None
    event_failures = metrics.event_failures if metrics else None
    db = Database(settings.database_url)
    orders = order_details.api_for(settings)
    cipher = Cipher(settings.secret_key.get_secret_value()) if settings.secret_key else None
    sources = event_sources(settings)
    stopping = _stop_on_signals()
    last_purge = 0.0
    try:
        async with httpx.AsyncClient(timeout=10, follow_redirects=False) as http:
            while not stopping.is_set():
                try:
                    sent = await backchannel.deliver_due(
                        db, settings, http, stopping=stopping, failures=failures
                    )
                    if any(sent.values()):
                        log.info("worker.backchannel", **sent)
                    if sources is not None:
                        events = await delivery.deliver_due(
                            db, settings, http, sources, stopping=stopping, failures=event_failures
                        )
                        if any(events.values()):
                            log.info("worker.events", **events)
                    if orders is not None and cipher is not None:
                        counted = metrics.order_queries if metrics else None
                        asked = await order_details.confirm_due(db, cipher, orders, counted)
                        if any(asked.values()):
                            log.info("worker.orders", **asked)
                    if once or time.monotonic() - last_purge >= settings.worker_interval_seconds:
                        log.info("worker.purged", **await purge(db, settings, stopping=stopping))
                        last_purge = time.monotonic()
                except Exception as exc:  # a database outage must not kill the loop
                    log.error("worker.failed", error=type(exc).__name__)
                    if once:
                        raise
                if once:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), settings.backchannel_poll_seconds)
        log.info("worker.stopped")
    finally:
        if orders is not None:
            await orders.close()
        await db.dispose()


def event_sources(settings: Settings) -> wire.Sources | None:
    """What the change events are rendered and signed with: the SCIM resources as the app
    reads them, the client's events secrets, whether the app may see the tenant. None without
    the master key, which seals the secrets: the events then wait."""
    if settings.secret_key is None:
        log.warning("events.disabled", reason="IDENTITY_SECRET_KEY is not set")
        return None
    master = settings.secret_key.get_secret_value()
    base_url, subjects = settings.base_url, Subjects(master)

    # The SCIM rendering is imported when the first event is sent: scim2-models builds its
    # schemas on import (most of a second), which every worker start would pay otherwise.

    async def users(
        conn: AsyncConnection, tenant_id: str, app_id: str, names: Sequence[str]
    ) -> dict[str, wire.Resource]:
        from identity.scim.resources import users_json

        return await users_json(conn, base_url, subjects, tenant_id, app_id, names)

    async def groups(
        conn: AsyncConnection, tenant_id: str, codes: Sequence[str]
    ) -> dict[str, wire.Resource]:
        from identity.scim.resources import groups_json

        return await groups_json(conn, base_url, tenant_id, codes)

    def user_id(user_name: str) -> str:
        from identity.scim.resources import user_id

        return user_id(user_name)

    def group_id(org_code: str) -> str:
        from identity.scim.resources import group_id

        return group_id(org_code)

    return wire.Sources(
        users=users,
        groups=groups,
        user_id=user_id,
        group_id=group_id,
        secrets=partial(clients.events_secrets, Cipher(master)),
        visible=_tenant_visible,
    )


_VISIBLE = (
    select(*eligibility.flags(eligibility.TENANT_AND_APP))
    .select_from(Tenant)
    .join(AppCredential, AppCredential.tenant_id == Tenant.tenant_id)
)


async def _tenant_visible(conn: AsyncConnection, tenant_id: str, app_id: str) -> bool:
    """The tenant and the app pass their half of the eligibility rule (what any member's
    login needs of them): the app is one of the tenant's, live."""
    row = (
        await conn.execute(
            _VISIBLE.where(Tenant.tenant_id == tenant_id, AppCredential.app_id == app_id)
        )
    ).first()
    return row is not None and all(row)


def _stop_on_signals() -> asyncio.Event:
    """An event SIGTERM and SIGINT set, instead of ending the process where it stands."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    return stopping
