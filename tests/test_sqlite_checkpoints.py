"""SQLite's write-ahead log is copied back into the database file beside the writes
(`identity.sqlite_checkpoints`): a write's commit does not wait for it, and what was written
reaches the file without any commit doing it."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

from sqlalchemy import insert

from identity import sqlite_checkpoints
from identity.db import Database
from identity.migrate import upgrade
from identity.models import Tenant
from tests.helpers.waiting import until


def _tenant(tenant_id: str) -> dict[str, str]:
    return {
        "tenant_id": tenant_id,
        "tenant_code": tenant_id,
        "name": tenant_id,
        "domain_name": "https://auth.example.com",
        "last_sync_time": "20261207120000000",
    }


def _in_file_alone(path: Path, copy: Path, tenant_id: str) -> bool:
    """Whether the database file itself, without its log, holds the tenant: a copy of the file
    alone is opened, which is what a checkpoint has copied back so far."""
    shutil.copyfile(path, copy)
    connection = sqlite3.connect(copy)
    try:
        found = connection.execute("SELECT 1 FROM tenants WHERE tenant_id = ?", (tenant_id,))
        return found.fetchone() is not None
    finally:
        connection.close()
        copy.unlink()


async def test_writes_reach_the_database_file_without_a_commit_copying_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "identity.db"
    url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    copy = tmp_path / "alone.db"
    try:
        async with db.write() as conn:
            await conn.execute(insert(Tenant), [_tenant(f"t-{k:04d}") for k in range(200)])
        # far below the 1,000 pages at which a commit would checkpoint on its own
        await until(lambda: _in_file_alone(path, copy, "t-0199"), "copied back")

        await asyncio.sleep(sqlite_checkpoints.EVERY_SECONDS)
        async with db.write() as conn:
            await conn.execute(insert(Tenant), [_tenant("t-late")])
        await until(lambda: _in_file_alone(path, copy, "t-late"), "copied back again")

        async with db.write() as conn:  # a writer's connection never checkpoints by itself
            automatic = (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar()
        assert automatic == 0
    finally:
        await db.dispose()
