"""SQLite's write-ahead log is copied back into the database file beside the writes
(`identity.sqlite_checkpoints`): a write's commit does not wait for it, what was written
reaches the file without any commit doing it, and a `Database` disposed of leaves no
checkpoint running behind it."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import insert

from identity import sqlite_checkpoints
from identity.db import Database
from identity.migrate import upgrade
from identity.models import Tenant
from tests.helpers.sqlite_files import tenant_row
from tests.helpers.waiting import until


def _in_file_alone(path: Path, copy: Path, tenant_id: str) -> bool:
    """Whether the database file itself, without its log, holds the tenant: what a checkpoint
    has copied back so far. The copy is made by another process (tests/helpers/sqlite_files.py
    says why this one must not open the file)."""
    subprocess.run(["cp", str(path), str(copy)], check=True)
    connection = sqlite3.connect(copy)
    try:
        found = connection.execute("SELECT 1 FROM tenants WHERE tenant_id = ?", (tenant_id,))
        return found.fetchone() is not None
    finally:
        connection.close()
        copy.unlink()


async def _database(path: Path) -> Database:
    url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(upgrade, url)
    return Database(url)


async def _write(db: Database, *tenant_ids: str) -> None:
    async with db.write() as conn:
        await conn.execute(insert(Tenant), [tenant_row(t) for t in tenant_ids])


async def test_writes_reach_the_database_file_without_a_commit_copying_them(
    tmp_path: Path,
) -> None:
    path, copy = tmp_path / "identity.db", tmp_path / "alone.db"
    db = await _database(path)
    try:
        await _write(db, *(f"t-{k:04d}" for k in range(200)))
        # far below the pages at which a commit would checkpoint on its own
        await until(lambda: _in_file_alone(path, copy, "t-0199"), "copied back")

        await asyncio.sleep(sqlite_checkpoints.EVERY_SECONDS)
        await _write(db, "t-late")
        await until(lambda: _in_file_alone(path, copy, "t-late"), "copied back again")

        async with db.write() as conn:  # a writer's connection leaves it to the checkpoints
            automatic = (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar()
        assert automatic == 10_000
    finally:
        await db.dispose()


def _is_checkpoint(task: asyncio.Task[object]) -> bool:
    return getattr(task.get_coro(), "__qualname__", "") == "Checkpoints._checkpoint"


async def test_a_database_disposed_of_leaves_no_checkpoint_behind(tmp_path: Path) -> None:
    db = await _database(tmp_path / "identity.db")
    await _write(db, "t-one")  # starts a checkpoint, which has not run yet
    running = [t for t in asyncio.all_tasks() if _is_checkpoint(t)]
    assert running
    await db.dispose()
    assert all(task.done() for task in running)
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
