"""The marketplace's calls as audited, and the nonces that stop replays
(identity.marketplace)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from identity.db import utcnow
from identity.models.base import Base


class MarketplaceCall(Base):
    """Audit of every marketplace call. Holds a hash of the payload, never the payload."""

    __tablename__ = "marketplace_calls"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    interface: Mapped[str] = mapped_column(String(32))
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    instance_id: Mapped[str | None] = mapped_column(String(64))
    payload_sha256: Mapped[str] = mapped_column(String(64))
    result_code: Mapped[str] = mapped_column(String(6))
    result_msg: Mapped[str] = mapped_column(String(255))
    latency_ms: Mapped[float] = mapped_column(Float)
    test: Mapped[bool] = mapped_column(Boolean, default=False)
    signature_variant: Mapped[str | None] = mapped_column(String(16))
    changes: Mapped[dict[str, int | str | bool] | None] = mapped_column(JSON(none_as_null=True))
    """What the call changed, as its handler counted it in the call's own transaction
    (`identity.marketplace.service`): counts, flags and identifiers only (an app id, an org
    code, `"added"`), never a name, a person's details or anything else of the payload. `{}`
    when nothing changed (a debug call, a failed one); NULL on the rows written before the
    column existed (migration 0013)."""


class Nonce(Base):
    """Replay guard shared by every process (design: nonces live in the database)."""

    __tablename__ = "nonces"
    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime, index=True)
