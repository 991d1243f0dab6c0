"""Local passwords, their sign-in tries, resets and the reset limits (identity.admin)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from identity.models.base import Base


class LocalPassword(Base):
    """A member's local password (contract §6, mirrored): only once an admin's reset confirmed
    it, Argon2id-hashed. `failed_tries` counts the account's failed sign-ins from any address
    since `failures_since` (the per-account ceiling, identity.admin.lockout), kept here so that
    every process counts the same tries; its row lock serialises the account's tries."""

    __tablename__ = "local_passwords"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    must_change: Mapped[bool] = mapped_column(Boolean)
    """Set by a reset: the member must choose a password of their own before anything else."""
    set_at: Mapped[datetime] = mapped_column(DateTime)
    failed_tries: Mapped[int] = mapped_column(Integer, default=0)
    failures_since: Mapped[datetime | None] = mapped_column(DateTime)


class LocalPasswordTry(Base):
    """Sign-in tries at one account from one client address (its rate-limit key: IPv4 as is,
    IPv6 by /64): the lockout counts failures here, so a stranger's failures lock out the
    stranger's address, never the owner's (identity.admin.lockout). `signed_in_at` marks an
    address the member has signed in from."""

    __tablename__ = "local_password_tries"
    __table_args__ = (UniqueConstraint("tenant_id", "user_name", "address"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    user_name: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    failed_tries: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_try_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    signed_in_at: Mapped[datetime | None] = mapped_column(DateTime)


class PasswordReset(Base):
    """One admin's reset of one member's password: a 6-digit code sent to the admin, stored
    only as a keyed hash. Rows are kept (not deleted when used): they are what the reset limits
    count, from `created_at`, the moment the code went out, unless its sending failed."""

    __tablename__ = "password_resets"
    __table_args__ = (
        Index("ix_password_resets_target", "tenant_id", "target_user_name", "created_at"),
        Index("ix_password_resets_admin", "tenant_id", "admin_user_name", "created_at"),
    )
    reset_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    target_user_name: Mapped[str] = mapped_column(String(64))
    admin_user_name: Mapped[str] = mapped_column(String(64))
    code_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    """sending, sent, failed, confirming, confirmed or dead (identity.admin.resets)."""
    tries: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime)
    """While `confirming`: the initial password is being sent until then."""
    code_sent_to: Mapped[str] = mapped_column(String(160))
    """Masked, as the admin was told."""
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime)


class ResetLimit(Base):
    """A lock row per key the reset limits count by: (tenant, "target" or "admin", member).
    Requests for the same key take it FOR UPDATE, so they count one after another and the
    limits hold exactly across processes."""

    __tablename__ = "reset_limits"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(64), primary_key=True)
