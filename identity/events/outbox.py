"""The outbox of the apps' change events: rows of `directory_events`, written by the change
itself, in its own transaction, so an event exists exactly when its change committed (a sync
that fails leaves none behind).

Who listens. A client subscribes when it has an events URI and secret (`SUBSCRIBES`). An event
of one app (a member's authorisation, a session's part in that app) concerns that app's
clients; an event of the whole tenant (`app_id` None: a department) concerns the clients of
every app the tenant has an active credential for. When no client listens, nothing is written:
`record` and `listening` cost one small query on `oidc_clients`, so the marketplace's syncs
and every logout pay nothing more while no app asked for events.

Cursors. Each event takes the tenant's next cursor, by an upsert of the tenant's row of
`event_cursors` adding n (`RETURNING` it) in the writing transaction. That row lock is held
until commit, so the transactions that write one tenant's events take turns and commit in cursor
order: a later one waits for the earlier to commit (or roll back, when it takes the same
cursors again). Whoever can see cursor c can therefore see every cursor below it, and a
consumer that has seen through c never skips a lower cursor that was still uncommitted. The
price is that these transactions of one tenant run one at a time while someone listens.

Lock order. The cursor is a row of its own, not a column of `tenants`, whose row every login
reads FOR SHARE: two logins that each end a session (a switch of account) would otherwise
both hold that share and both wait to update it. A sync that writes members asks `listening`
first, which takes the tenant's cursor row at once when someone listens, so that it waits
there, before it locks any member, for another writer of the tenant's events.

Streams. Each concerned client gets an `event_streams` row for the tenant the first time (its
delivery starts just before this transaction's events), and an idle stream is made due again,
so the worker (`identity.events.delivery`) sends the events at its next pass.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    DateTime,
    Select,
    String,
    Text,
    bindparam,
    cast,
    exists,
    false,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from identity.db import utcnow
from identity.models import (
    ACTIVE,
    AppCredential,
    DirectoryEvent,
    EventCursor,
    EventStream,
    OidcClient,
    Tenant,
)

Executor = AsyncSession | AsyncConnection


class EventType(StrEnum):
    USER_CREATED = "directory.user.created"
    USER_UPDATED = "directory.user.updated"
    USER_DEACTIVATED = "directory.user.deactivated"
    USER_DELETED = "directory.user.deleted"
    GROUP_CREATED = "directory.group.created"
    GROUP_UPDATED = "directory.group.updated"
    GROUP_DELETED = "directory.group.deleted"
    SESSION_ENDED = "access.session_ended"


@dataclass(frozen=True)
class Event:
    """One change, as its producer knows it: the resource by its natural key (a user name, an
    org code, a session's sid) and what the worker cannot read back later (the name of what
    was deleted, why a session ended). The resource itself is read when the event is sent."""

    type: EventType
    key: str
    app_id: str | None
    """The app it concerns; None: every app of the tenant."""
    data: dict[str, Any] | None = None


SUBSCRIBES: ColumnElement[bool] = OidcClient.events_uri.is_not(None) & (
    OidcClient.events_secret_enc.is_not(None)
)
"""A client that asked for events: where to send them, and the secret to sign them with."""


def sees_tenant(tenant_id: Any) -> ColumnElement[bool]:
    """The client's app has an active credential for the tenant: it is one of the tenant's
    apps, so the tenant's own events (its departments) concern it. `tenant_id` may be a
    column of the enclosing query."""
    return exists().where(
        AppCredential.tenant_id == tenant_id,
        AppCredential.app_id == OidcClient.app_id,
        AppCredential.state == ACTIVE,
    )


def _concerned(tenant_id: str, app_ids: Sequence[str], tenant_wide: bool) -> Select[str, str, bool]:
    """The subscribing clients of `app_ids` and, with `tenant_wide`, of the tenant's apps:
    (client id, app id, whether it sees the tenant)."""
    sees = sees_tenant(tenant_id)
    which: list[ColumnElement[bool]] = [OidcClient.app_id.in_(sorted(app_ids))] if app_ids else []
    if tenant_wide:
        which.append(sees)
    return (
        select(OidcClient.client_id, OidcClient.app_id, sees if tenant_wide else false())
        .where(SUBSCRIBES, or_(*which))
        .order_by(OidcClient.client_id)
    )


def _listen(upsert: Any) -> Any:
    """The tenant's cursor row, created when missing and locked until commit, but only when
    someone listens; the cursor (or nothing) is returned."""
    table = EventCursor.__table__
    listeners = exists().where(
        SUBSCRIBES,
        or_(OidcClient.app_id == bindparam("app_id"), sees_tenant(bindparam("tenant_id"))),
    )
    known = exists().where(Tenant.tenant_id == bindparam("tenant_id"))
    source = select(bindparam("tenant_id", type_=String), literal(0, BigInteger))
    stmt = upsert(table).from_select(["tenant_id", "cursor"], source.where(known, listeners))
    return stmt.on_conflict_do_update(
        index_elements=["tenant_id"], set_={"cursor": table.c.cursor}
    ).returning(table.c.cursor)


def _take(upsert: Any) -> Any:
    """The tenant's next `taken` cursors: the last one is returned."""
    table = EventCursor.__table__
    stmt = upsert(table).values(tenant_id=bindparam("tenant"), cursor=bindparam("taken"))
    return stmt.on_conflict_do_update(
        index_elements=["tenant_id"], set_={"cursor": table.c.cursor + stmt.excluded.cursor}
    ).returning(table.c.cursor)


_LISTENING = {"postgresql": _listen(postgresql.insert), "sqlite": _listen(sqlite.insert)}
_TAKE = {"postgresql": _take(postgresql.insert), "sqlite": _take(sqlite.insert)}


async def listening(db: Executor, tenant_id: str, app_id: str | None = None) -> bool:
    """Whether any client listens to this tenant: a subscribing client of `app_id`, or of any
    app the tenant has a credential for. One small query, built once and sent on the Core
    connection (0.6 ms through the ORM session, which every sync would pay). When one does, the
    tenant's row is locked from now until commit (as `record` will lock it): call this before
    writing rows a login reads FOR SHARE, so the locks are taken in the login's order (see the
    module's docstring). False also when the tenant is unknown (nothing can be recorded for
    it)."""
    conn = await db.connection() if isinstance(db, AsyncSession) else db
    statement = _LISTENING[conn.dialect.name]
    found = await conn.execute(statement, {"tenant_id": tenant_id, "app_id": app_id})
    return found.first() is not None


async def record(db: Executor, tenant_id: str, events: Sequence[Event]) -> int:
    """Write the events some client listens to, in the caller's transaction, with the tenant's
    next cursors, in the order given; returns how many were written. Nothing is written when
    no client listens (one query) or when the tenant is unknown."""
    if not events:
        return 0
    conn = await db.connection() if isinstance(db, AsyncSession) else db
    apps = sorted({e.app_id for e in events if e.app_id is not None})
    tenant_wide = any(e.app_id is None for e in events)
    clients = (await conn.execute(_concerned(tenant_id, apps, tenant_wide))).all()
    heard = {app_id for _, app_id, _ in clients}
    wide = any(sees for _, _, sees in clients)
    kept = [e for e in events if (e.app_id in heard if e.app_id is not None else wide)]
    if not kept:
        return 0
    taken = await conn.execute(_TAKE[conn.dialect.name], {"tenant": tenant_id, "taken": len(kept)})
    last = taken.scalar_one_or_none()
    if last is None:
        return 0
    first = last - len(kept) + 1
    await _insert(conn, tenant_id, first - 1, kept, utcnow())
    kept_apps = {e.app_id for e in kept}
    streams = [
        client_id
        for client_id, app_id, sees in clients
        if app_id in kept_apps or (sees and None in kept_apps)
    ]
    await _open_streams(conn, tenant_id, streams, first - 1)
    return len(kept)


_INCOMING = (
    func.unnest(
        bindparam("apps", type_=ARRAY(String)),
        bindparam("types", type_=ARRAY(String)),
        bindparam("keys", type_=ARRAY(String)),
        bindparam("data", type_=ARRAY(Text)),
    )
    .table_valued("app_id", "type", "key", "data", with_ordinality="n")
    .render_derived(name="incoming")
)
_TABLE = DirectoryEvent.metadata.tables[DirectoryEvent.__tablename__]
"""The table, not the model: an ORM session takes a statement on the model with parameters for
a bulk INSERT of ORM rows, slower (and, for `_INSERT_ALL`, wrong)."""
_INSERT_ALL = insert(_TABLE).from_select(
    ["tenant_id", "cursor", "app_id", "type", "resource_key", "data", "created_at"],
    select(
        bindparam("tenant_id", type_=String),
        bindparam("before", type_=BigInteger) + _INCOMING.c.n,
        _INCOMING.c.app_id,
        _INCOMING.c.type,
        _INCOMING.c.key,
        cast(_INCOMING.c.data, JSON),
        bindparam("now", type_=DateTime),
    ),
)
"""PostgreSQL: the events as one statement over arrays, cursors counted from `before`. psycopg
sends an executemany of 500 rows as 500 statements (14 ms of a 500-member authSync, against
under 2 ms for this)."""
_EACH = func.json_each(bindparam("events", type_=String)).table_valued("key", "value")
_INSERT_EACH = insert(_TABLE).from_select(
    ["tenant_id", "cursor", "app_id", "type", "resource_key", "data", "created_at"],
    select(
        bindparam("tenant_id", type_=String),
        bindparam("before", type_=BigInteger) + 1 + _EACH.c.key,
        *(func.json_extract(_EACH.c.value, literal_column(f"'$[{n}]'")) for n in range(4)),
        bindparam("now", type_=DateTime),
    ),
)
"""SQLite: the same over one JSON array of `[app, type, key, data]`, whose elements `json_each`
numbers from 0; an executemany costs SQLAlchemy's converters per row, 5 ms for 500."""


async def _insert(
    db: AsyncConnection, tenant_id: str, before: int, events: Sequence[Event], now: datetime
) -> None:
    if db.dialect.name == "postgresql":
        arrays = {
            "apps": [e.app_id for e in events],
            "types": [e.type.value for e in events],
            "keys": [e.key for e in events],
            "data": [None if e.data is None else json.dumps(e.data) for e in events],
        }
        await db.execute(
            _INSERT_ALL, {"tenant_id": tenant_id, "before": before, "now": now} | arrays
        )
        return
    listed = json.dumps([[e.app_id, e.type.value, e.key, e.data] for e in events])
    await db.execute(
        _INSERT_EACH, {"tenant_id": tenant_id, "before": before, "now": now, "events": listed}
    )


async def _open_streams(
    db: AsyncConnection, tenant_id: str, client_ids: Sequence[str], before: int
) -> None:
    """A stream for each client that has none for the tenant yet, starting after `before`;
    an existing stream resting between batches is made due now (one in a batch's retries
    keeps its back-off). In client order, so concurrent writers lock them alike."""
    now = utcnow()
    upsert = postgresql.insert if db.dialect.name == "postgresql" else sqlite.insert
    stmt = upsert(EventStream)
    stmt = stmt.on_conflict_do_update(
        index_elements=[EventStream.client_id, EventStream.tenant_id],
        set_={"next_attempt_at": stmt.excluded.next_attempt_at},
        where=EventStream.batch_through.is_(None) & (EventStream.next_attempt_at > now),
    )
    await db.execute(
        stmt,
        [
            {
                "client_id": client_id,
                "tenant_id": tenant_id,
                "delivered_through": before,
                "attempts": 0,
                "skipped": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for client_id in client_ids
        ],
    )
