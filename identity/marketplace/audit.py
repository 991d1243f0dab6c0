"""Replay guard and audit trail for marketplace calls, both in the shared database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from identity.db import insert_for, utcnow
from identity.models import MarketplaceCall, Nonce


async def claim_nonce(session: AsyncSession, nonce: str, ttl_seconds: int) -> bool:
    """True the first time a nonce is seen within the TTL, across every process.

    The primary key serialises concurrent claims: PostgreSQL makes the second insert wait for
    the first to commit, then the guarded update finds nothing to do and returns no row.
    """
    now = utcnow()
    insert = insert_for(session)
    stmt = insert(Nonce).values(nonce=nonce, seen_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=["nonce"],
        set_={"seen_at": stmt.excluded.seen_at},
        where=Nonce.seen_at < now - timedelta(seconds=ttl_seconds),
    )
    result = await session.execute(stmt.returning(Nonce.nonce))
    return result.first() is not None


@dataclass
class CallRecord:
    """What the audit keeps of a call: identifiers, a hash of the payload, the outcome, and
    what it changed."""

    interface: str
    payload_sha256: str = ""
    tenant_id: str | None = None
    instance_id: str | None = None
    test: bool = False
    signature_variant: str | None = None
    nonce: str | None = None
    """Set once the signature is good: only then may the call consume its nonce."""
    extra: dict[str, str] = field(default_factory=dict)
    changes: dict[str, int | str | bool] = field(default_factory=dict)
    """What the call changed, as its handler counted it (`service.Reply.changes`): counts,
    flags and identifiers, never the payload. Empty for a call that changed nothing (a
    failed or debug one)."""


async def record_call(
    session: AsyncSession, record: CallRecord, result_code: str, result_msg: str, latency_ms: float
) -> None:
    session.add(
        MarketplaceCall(
            received_at=utcnow(),
            interface=record.interface[:32],
            tenant_id=(record.tenant_id or None) and record.tenant_id[:64],
            instance_id=(record.instance_id or None) and record.instance_id[:64],
            payload_sha256=record.payload_sha256,
            result_code=result_code,
            result_msg=result_msg.replace("\x00", "")[:255],  # PostgreSQL text holds no NUL
            latency_ms=latency_ms,
            test=record.test,
            signature_variant=record.signature_variant,
            changes=record.changes,
        )
    )
