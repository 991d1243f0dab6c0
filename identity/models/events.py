"""The apps' change events: the outbox, each tenant's cursor, and each client's delivery
stream (identity.events)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from identity.db import utcnow
from identity.models.base import Base


class DirectoryEvent(Base):
    """Outbox of the apps' change events: written in the transaction that made the change,
    with the tenant's next cursor, and delivered by `identity worker` (identity.events)."""

    __tablename__ = "directory_events"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    app_id: Mapped[str | None] = mapped_column(String(64))
    """The app it concerns (a member's authorisation); None: every app of the tenant."""
    type: Mapped[str] = mapped_column(String(40))
    resource_key: Mapped[str] = mapped_column(String(64))
    """The user name, the department's code or the session's sid."""
    data: Mapped[dict[str, object] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class EventCursor(Base):
    """The cursor of a tenant's last change event: taken by updating this row, so a tenant's
    event-writing transactions commit in cursor order (identity.events.outbox). Not a column
    of `tenants`, whose row every login reads FOR SHARE."""

    __tablename__ = "event_cursors"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[int] = mapped_column(BigInteger)


class EventStream(Base):
    """One client's delivery of one tenant's events, in cursor order: what it has received,
    the batch being sent (resent whole, under the same webhook-id, until it is answered), and
    the lease and retries of that batch."""

    __tablename__ = "event_streams"
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    delivered_through: Mapped[int] = mapped_column(BigInteger)
    batch_through: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    batch_started_at: Mapped[datetime | None] = mapped_column(DateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(String(255))
    skipped: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Events of batches given up on, never delivered."""
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
