"""The one place that ends a member's or a tenant's right to use the app.

Every de-provisioning path calls `end_access`: authSync flag 0 and 3, `enable:"false"`, tenant
deleted, app credential deleted, instance frozen or released, admin "end sessions", a password
reset, and the member's own password change (every session but the changing browser's). It ends
the affected sessions, or for one app only that app's part of them, through `end_sessions`, in
the caller's transaction, so the access ends when that transaction commits, remembers why for
each browser whose whole session ended (it is told once, on its next request), and writes one
audit row per member (or one for a whole tenant or app). `end_sessions` is also how every other
end of a session goes (logout, the provider's end-session endpoint, a login as someone else,
expiry): it takes the tokens issued in the session with it, queues the back-channel logout of
the apps that received them, and records an `access.session_ended` event for the apps the
session held whose clients listen (`identity.events`).

A grant of the OpenID Provider can also end alone, its session going on (`end_grants`): a code
or a rotated refresh token presented twice, or the client revoking a token (RFC 7009). And a
client removed by the operator takes its grants, its undelivered logouts and its change
events still to be sent with it (`end_client`). Every end of a grant is the grant's row
deleted, its codes and refresh tokens just before it (below), nothing else: what was issued
from it names it and stops being active when the row is gone.

On PostgreSQL a refresh locks, in this order, the refresh token it spends, the session it
touches and (checking the new token's key) the grant; a code's redemption the code first.
Whatever ends grants deletes what was issued from them (`_ISSUED`: codes, then refresh
tokens) first, in statements of their own, and only then the grants or their sessions: both
sides then start with the same row, so a redemption or a refresh and an ending of the same
grant wait for each other instead of deadlocking (the other order held the session or the
grant while the refresh held its token).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from itertools import groupby

from sqlalchemy import bindparam, delete, exists, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from identity.db import Tx, utcnow
from identity.events import outbox
from identity.events.outbox import Event, EventType
from identity.models import (
    AccessRevocation,
    EventStream,
    LogoutDelivery,
    MemberSession,
    OidcClient,
    OidcCode,
    OidcGrant,
    RefreshToken,
    SessionApp,
    SessionEnding,
)

Executor = AsyncSession | AsyncConnection

_ISSUED: tuple[type[OidcCode], type[RefreshToken]] = (OidcCode, RefreshToken)
"""What is issued from a grant, in the order an ending deletes it (see above)."""


class Reason(StrEnum):
    """Why access ended: recorded in the audit (`AccessRevocation`), told once to the browser
    whose session it ended, and the key of the message that browser is shown."""

    MEMBER_DELETED = "member_deleted"
    AUTHORISATION_CANCELLED = "authorisation_cancelled"
    MEMBER_DISABLED = "member_disabled"
    TENANT_DELETED = "tenant_deleted"
    APP_CREDENTIAL_DELETED = "app_credential_deleted"
    INSTANCE_FROZEN = "instance_frozen"
    INSTANCE_RELEASED = "instance_released"
    INSTANCE_UNBOUND = "instance_unbound"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a reason, not a password
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a reason, not a password
    ADMIN_ENDED = "admin_ended"


async def end_access(
    session: AsyncSession,
    *,
    tenant_id: str,
    reason: Reason,
    app_id: str | None = None,
    user_names: Sequence[str] | None = None,
    keep: str | None = None,
) -> int:
    """End access for `user_names` of the tenant (all members when None), in one app or all.

    For one app, that app's part of each session ends (and a session left with no app ends);
    otherwise the whole sessions end. `keep` is the id hash of a session that stays (the
    browser in which the member changed their own password). Returns how many sessions lost
    access.
    """
    if user_names is not None and not user_names:
        return 0
    members = select(MemberSession.sid, MemberSession.user_name).where(
        MemberSession.tenant_id == tenant_id
    )
    if keep is not None:
        members = members.where(MemberSession.id_hash != keep)
    if user_names is not None:
        members = members.where(MemberSession.user_name.in_(list(user_names)))
    if app_id is not None:
        members = members.join(SessionApp, SessionApp.sid == MemberSession.sid).where(
            SessionApp.app_id == app_id
        )
    affected = (await session.execute(members)).all()
    ended = Counter(user_name for _, user_name in affected)
    sids = [sid for sid, _ in affected]
    now = utcnow()
    await _remember_endings(session, sids, tenant_id, app_id, reason, now)
    await end_sessions(session, sids, app_id, reason)
    targets: Sequence[str | None] = user_names if user_names is not None else [None]
    await session.execute(
        insert(AccessRevocation),
        [
            {
                "tenant_id": tenant_id,
                "app_id": app_id,
                "user_name": name,
                "reason": reason.value,
                "sessions_ended": ended.total() if name is None else ended[name],
                "created_at": now,
            }
            for name in targets
        ],
    )
    return ended.total()


async def _remember_endings(
    db: Executor,
    sids: Sequence[str],
    tenant_id: str,
    app_id: str | None,
    reason: Reason,
    now: datetime,
) -> None:
    """Keep why each of these sessions ends (all of it, not one app of several), so the browser
    holding it is told on its next request rather than just "not signed in"."""
    if not sids:
        return
    latest_app = (
        select(SessionApp.app_id)
        .where(SessionApp.sid == MemberSession.sid)
        .order_by(SessionApp.created_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    whole = select(MemberSession.id_hash, MemberSession.expires_at, latest_app).where(
        MemberSession.sid.in_(sids)
    )
    if app_id is not None:
        other_apps = exists().where(
            SessionApp.sid == MemberSession.sid, SessionApp.app_id != app_id
        )
        whole = whole.where(~other_apps)
    rows = (await db.execute(whole)).all()
    if rows:  # an older ending of the same id, if any, is replaced: the latest reason wins
        hashes = [id_hash for id_hash, _, _ in rows]
        await db.execute(delete(SessionEnding).where(SessionEnding.id_hash.in_(hashes)))
        await db.execute(
            insert(SessionEnding),
            [
                {
                    "id_hash": id_hash,
                    "tenant_id": tenant_id,
                    "app_id": app_id or held_app,
                    "reason": reason.value,
                    "ended_at": now,
                    "expires_at": expires_at,
                }
                for id_hash, expires_at, held_app in rows
            ],
        )


async def end_sessions(
    db: Executor, sids: Sequence[str], app_id: str | None = None, reason: str | None = None
) -> None:
    """End these sessions, or with `app_id` only that app's part of them (a session left with
    no app ends too), in the caller's transaction. The grants of what ends go with it, so every
    token issued there stops being active when the transaction commits, and each client that
    received tokens there and has a back-channel logout URI gets an outbox row
    (`LogoutDelivery`), delivered by the worker. Every way a session ends comes here. `reason`,
    when the caller knows it (a `Reason`, `expired`), goes into the apps' change events."""
    if not sids:
        return
    await _announce(db, sids, app_id, reason)
    await _queue_logouts(db, sids, app_id)  # before the tokens go: it asks which were issued
    grants = select(OidcGrant.grant_id).where(OidcGrant.sid.in_(sids))
    if app_id is not None:
        grants = grants.where(OidcGrant.app_id == app_id)
    for issued in _ISSUED:
        await db.execute(delete(issued).where(issued.grant_id.in_(grants)))
    if app_id is None:
        await db.execute(delete(MemberSession).where(MemberSession.sid.in_(sids)))
        return
    await db.execute(delete(OidcGrant).where(OidcGrant.sid.in_(sids), OidcGrant.app_id == app_id))
    await db.execute(
        delete(SessionApp).where(SessionApp.sid.in_(sids), SessionApp.app_id == app_id)
    )
    await db.execute(
        delete(MemberSession).where(
            MemberSession.sid.in_(sids), ~exists().where(SessionApp.sid == MemberSession.sid)
        )
    )


_ENDING = (
    select(MemberSession.tenant_id, SessionApp.sid, SessionApp.app_id, MemberSession.user_name)
    .join(MemberSession, MemberSession.sid == SessionApp.sid)
    .where(
        SessionApp.sid.in_(bindparam("sids", expanding=True)),
        exists().where(OidcClient.app_id == SessionApp.app_id, outbox.SUBSCRIBES),
    )
    .order_by(MemberSession.tenant_id, SessionApp.sid, SessionApp.app_id)
)
_ENDING_IN_APP = _ENDING.where(SessionApp.app_id == bindparam("app_id"))


async def _announce(
    db: Executor, sids: Sequence[str], app_id: str | None, reason: str | None
) -> None:
    """An `access.session_ended` event for each app whose part of these sessions ends and
    whose clients listen, recorded tenant by tenant in id order (each takes the tenant's event
    cursor; one order, so two enders of sessions of several tenants cannot deadlock). One
    query, built once, which finds nothing while no client of those apps listens: every logout
    pays it."""
    conn = await db.connection() if isinstance(db, AsyncSession) else db
    if app_id is None:
        found = await conn.execute(_ENDING, {"sids": list(sids)})
    else:
        found = await conn.execute(_ENDING_IN_APP, {"sids": list(sids), "app_id": app_id})
    told = {"reason": reason} if reason else {}
    for tenant_id, ended in groupby(found.all(), key=lambda row: str(row[0])):
        events = [
            Event(EventType.SESSION_ENDED, sid, app, {"user_name": user_name, **told})
            for _, sid, app, user_name in ended
        ]
        await outbox.record(db, tenant_id, events)


async def _queue_logouts(db: Executor, sids: Sequence[str], app_id: str | None) -> None:
    tokens_issued = exists().where(RefreshToken.grant_id == OidcGrant.grant_id)
    query = (
        select(
            OidcGrant.client_id,
            OidcClient.backchannel_logout_uri,
            OidcGrant.sid,
            MemberSession.tenant_id,
            MemberSession.user_name,
        )
        .join(OidcClient, OidcClient.client_id == OidcGrant.client_id)
        .join(MemberSession, MemberSession.sid == OidcGrant.sid)
        .where(
            OidcGrant.sid.in_(sids),
            OidcClient.backchannel_logout_uri.is_not(None),
            tokens_issued,
        )
        .distinct()
    )
    if app_id is not None:
        query = query.where(OidcGrant.app_id == app_id)
    rows = (await db.execute(query)).all()
    if not rows:
        return
    now = utcnow()
    await db.execute(
        insert(LogoutDelivery),
        [
            {
                "client_id": client_id,
                "uri": uri,
                "sid": sid,
                "tenant_id": tenant_id,
                "user_name": user_name,
                "created_at": now,
                "attempts": 0,
                "next_attempt_at": now,
            }
            for client_id, uri, sid, tenant_id, user_name in rows
        ],
    )


_END_GRANT = (
    *(delete(issued).where(issued.grant_id == bindparam("grant_id")) for issued in _ISSUED),
    delete(OidcGrant).where(OidcGrant.grant_id == bindparam("grant_id")),
)


def end_grant(tx: Tx, grant_id: str) -> None:
    """`end_grants` of one grant in a write of `Database.run_write` (prebuilt statements)."""
    for statement in _END_GRANT:
        tx.run(statement, {"grant_id": grant_id})


async def end_grants(db: Executor, grant_ids: Sequence[str]) -> None:
    """End these grants alone, in the caller's transaction: their codes and refresh tokens go,
    then the rows, so nothing issued from them is active after commit.
    No back-channel logout is queued: the member's session goes on."""
    if grant_ids:
        ending = list(grant_ids)
        for issued in _ISSUED:
            await db.execute(delete(issued).where(issued.grant_id.in_(ending)))
        await db.execute(delete(OidcGrant).where(OidcGrant.grant_id.in_(ending)))


async def end_client(db: Executor, client_id: str) -> bool:
    """Remove an OpenID client: its grants end (`end_grants`), the back-channel logouts and
    change events still waiting for it are dropped (no one is left to hear them), and the
    client goes. False when there is no such client."""
    grant_ids = (
        await db.scalars(select(OidcGrant.grant_id).where(OidcGrant.client_id == client_id))
    ).all()
    await end_grants(db, grant_ids)
    await db.execute(
        delete(LogoutDelivery).where(
            LogoutDelivery.client_id == client_id,
            LogoutDelivery.delivered_at.is_(None),
            LogoutDelivery.given_up_at.is_(None),
        )
    )
    await db.execute(delete(EventStream).where(EventStream.client_id == client_id))
    removed = await db.execute(delete(OidcClient).where(OidcClient.client_id == client_id))
    return bool(removed.rowcount)  # type: ignore[attr-defined]
