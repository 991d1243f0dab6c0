"""Member sessions, the apps each holds, the endings a browser is told of, and the audit
of ended access (identity.sessions, identity.access)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from identity.db import utcnow
from identity.models.base import Base


class MemberSession(Base):
    """A browser's sign-in: one member of one tenant, holding each app the member signed in to
    through the marketplace (`SessionApp`). Only the SHA-256 of the cookie's random id is
    stored, and it changes at every login; `sid` is a separate random id that stays for the
    session's life, the one its apps' rows and the tokens issued in it refer to."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_member", "tenant_id", "user_name"),)
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    sid: Mapped[str] = mapped_column(String(43), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    user_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    authenticated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    """When the member last signed in through the marketplace (each login to another of their
    apps, or a forced one, counts): the `auth_time` of tokens issued in this session."""
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    """The absolute timeout; the idle timeout runs from `last_seen_at`."""
    sign_in_method: Mapped[str | None] = mapped_column(String(16))
    """How the latest sign-in into this session was made: `marketplace` or `password` (the
    three columns below are of that sign-in too; all four are None for sessions opened before
    revision 0012). `identity.sessions.devices` says what is kept and why."""
    browser: Mapped[str | None] = mapped_column(String(64))
    """The browser in words ("Chrome 131"), parsed from the user agent, which is not kept."""
    platform: Mapped[str | None] = mapped_column(String(64))
    """The operating system in words ("Windows 10", "iOS 17.4")."""
    address: Mapped[str | None] = mapped_column(String(64))
    """The client address the sign-in came from (the one the rate limits count)."""


class SessionApp(Base):
    """One app a session signed in to through the marketplace, with that app's upstream tokens
    (encrypted at rest, bound to this row by the associated data). Ending access to one app
    deletes its row; a session left without apps is ended."""

    __tablename__ = "session_apps"
    sid: Mapped[str] = mapped_column(
        String(43), ForeignKey("sessions.sid", ondelete="CASCADE"), primary_key=True
    )
    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    access_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    refresh_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    token_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    renewing_until: Mapped[datetime | None] = mapped_column(DateTime)
    """A lease: one request at a time renews the upstream tokens; after a transient failure
    the next attempt waits until it runs out."""


class SessionEnding(Base):
    """Why a session was ended for its member, kept for the browser that held it: the next
    request with that cookie is told once (`identity.sessions.Sessions.ending`), then the row
    goes. Keyed by the cookie's hash, so only that browser can read it; the worker drops it
    once the session would have expired anyway."""

    __tablename__ = "session_endings"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    app_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(64))
    ended_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class AccessRevocation(Base):
    """Audit of ended access: one row per member (or whole tenant, or app) whose access ended,
    why, and how many sessions it ended. Kept for `IDENTITY_RETENTION_DAYS`. The back-channel
    logouts it causes are `LogoutDelivery` rows."""

    __tablename__ = "access_revocations"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    app_id: Mapped[str | None] = mapped_column(String(64))
    user_name: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(64))
    sessions_ended: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
