"""Reading a live SQLite database's file, as the tests that look for secrets in it do, must not
cost it its locks (tests/helpers/sqlite_files.py): otherwise another process closing its last
connection deletes the write-ahead log under this one, and what this one commits next is lost."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import insert

from identity.db import Database
from identity.migrate import upgrade
from identity.models import Tenant
from tests.helpers.sqlite_files import stored_bytes, tenant_row


def _tenants_seen_elsewhere(path: Path) -> int:
    """The tenants another process finds, opening the file and closing it again: as the last
    connection it thinks it is, it copies the log back and deletes it if it can lock the file."""
    count = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "print(c.execute('SELECT count(*) FROM tenants').fetchone()[0]); c.close()"
    )
    found = subprocess.run(
        [sys.executable, "-c", count, str(path)], check=True, capture_output=True, text=True
    )
    return int(found.stdout)


async def _write(db: Database, tenant_id: str) -> None:
    async with db.write() as conn:
        await conn.execute(insert(Tenant), [tenant_row(tenant_id)])


@pytest.mark.parametrize(
    ("read", "kept"),
    [
        pytest.param(lambda url, path: stored_bytes(url), 2, id="by the helper"),
        pytest.param(lambda url, path: path.read_bytes(), 1, id="by this process itself"),
    ],
)
async def test_reading_the_file_keeps_the_commits_that_follow(
    tmp_path: Path, read: Callable[[str, Path], bytes], kept: int
) -> None:
    """The second case shows the harm the helper avoids, so the first can fail."""
    path = tmp_path / "identity.db"
    url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    try:
        await _write(db, "t-first")
        read(url, path)
        assert await asyncio.to_thread(_tenants_seen_elsewhere, path) == 1
        await _write(db, "t-second")  # this process's connection is still open
        assert await asyncio.to_thread(_tenants_seen_elsewhere, path) == kept
    finally:
        await db.dispose()
