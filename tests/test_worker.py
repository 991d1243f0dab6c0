"""`identity worker`: what it purges, what it keeps, and that the command runs."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

from sqlalchemy import func, insert, select

from identity.db import Database, utcnow
from identity.models import (
    AccessRevocation,
    LocalPasswordTry,
    MarketplaceCall,
    MemberSession,
    Nonce,
    PasswordReset,
)
from identity.settings import Settings
from identity.worker import purge
from tests.helpers.servers import ROOT


async def _count(db: Database, model: type) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def _session(name: str, *, seen_ago: timedelta, expires_in: timedelta) -> dict[str, object]:
    now = utcnow()
    return {
        "id_hash": name.ljust(64, "0"),
        "sid": f"sid-{name}",
        "tenant_id": "t1",
        "user_name": name,
        "created_at": now - seen_ago,
        "last_seen_at": now - seen_ago,
        "expires_at": now + expires_in,
    }


async def test_purge_removes_only_what_has_expired(db: Database, settings: Settings) -> None:
    now = utcnow()
    hour, day = timedelta(hours=1), timedelta(days=1)
    async with db.transaction() as session:
        await session.execute(
            insert(MemberSession),
            [
                _session("fresh", seen_ago=timedelta(minutes=1), expires_in=hour),
                _session("idle", seen_ago=timedelta(minutes=31), expires_in=hour),
                _session("absolute", seen_ago=timedelta(seconds=1), expires_in=-timedelta(1)),
            ],
        )
        await session.execute(
            insert(Nonce),
            [
                {"nonce": "new", "seen_at": now - timedelta(seconds=10)},
                {"nonce": "old", "seen_at": now - timedelta(seconds=121)},
            ],
        )
        call = {
            "interface": "authSync",
            "payload_sha256": "0" * 64,
            "result_code": "000000",
            "result_msg": "success.",
            "latency_ms": 1.0,
        }
        await session.execute(
            insert(MarketplaceCall),
            [{**call, "received_at": now - 91 * day}, {**call, "received_at": now - 89 * day}],
        )
        revocation = {"tenant_id": "t1", "reason": "member_deleted"}
        await session.execute(
            insert(AccessRevocation),
            [
                {**revocation, "created_at": now - 100 * day},  # past the retention
                {**revocation, "created_at": now - hour, "user_name": "u"},
            ],
        )
        reset = {
            "tenant_id": "t1",
            "target_user_name": "bob",
            "admin_user_name": "alice",
            "code_hash": "0" * 64,
            "status": "sent",
            "code_sent_to": "+86138****0001",
        }
        for reset_id, age in (("old", 100 * day), ("new", hour)):  # history; still counted
            created = now - age
            await session.execute(
                insert(PasswordReset).values(
                    **reset, reset_id=reset_id, created_at=created, expires_at=created
                )
            )
        tries = [  # (address, last try, signed in from it)
            ("198.51.100.1", 2 * day, False),  # a stranger's, long unlocked: gone
            ("198.51.100.2", hour, False),  # a stranger's, recent: kept
            ("203.0.113.1", 10 * day, True),  # the member's: kept
            ("203.0.113.2", 100 * day, True),  # the member's, past the retention: gone
        ]
        await session.execute(
            insert(LocalPasswordTry),
            [
                {
                    "tenant_id": "t1",
                    "user_name": "bob",
                    "address": address,
                    "failed_tries": 1,
                    "last_try_at": now - ago,
                    "signed_in_at": now - ago if member else None,
                }
                for address, ago, member in tries
            ],
        )

    counts = await purge(db, settings)

    assert counts == {
        "sessions": 2,
        "nonces": 1,
        "marketplace_calls": 1,
        "access_revocations": 1,
        "logout_deliveries": 0,
        "directory_events": 0,
        "oidc_codes": 0,
        "session_endings": 0,
        "password_resets": 1,
        "local_password_tries": 2,
    }
    async with db.read() as session:
        assert await session.scalar(select(MemberSession.user_name)) == "fresh"
        assert await session.scalar(select(Nonce.nonce)) == "new"
        assert await session.scalar(select(AccessRevocation.user_name)) == "u"  # the audit kept
    assert await _count(db, MarketplaceCall) == 1
    async with db.read() as session:
        kept = set(await session.scalars(select(LocalPasswordTry.address)))
    assert kept == {"198.51.100.2", "203.0.113.1"}
    assert await purge(db, settings) == dict.fromkeys(counts, 0)  # a second replica: no-op


async def test_purge_works_through_more_rows_than_one_batch(
    db: Database, settings: Settings
) -> None:
    old = utcnow() - timedelta(minutes=5)
    async with db.transaction() as session:
        await session.execute(
            insert(Nonce), [{"nonce": f"n{i}", "seen_at": old} for i in range(2500)]
        )
    assert (await purge(db, settings))["nonces"] == 2500
    assert await _count(db, Nonce) == 0


def test_worker_command_runs_one_pass(database_url: str, db: Database) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    env |= {"IDENTITY_DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "identity.cli", "worker", "--once"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "worker.purged" in result.stdout + result.stderr
