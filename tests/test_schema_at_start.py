"""A replica never serves a schema that is not its own: `identity serve` and `identity worker`
refuse, in one line and exit 2, a database not migrated, migrated to an older revision (started
before `identity migrate` finished) or to a newer one (an image rolled back after a later
release migrated it). The embedded SQLite default still migrates itself."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from identity.db import async_url
from identity.migrate import _revisions, alembic_config
from tests.helpers.servers import ROOT, free_port, scratch_postgres

KEY = "0123456789abcdef0123"
HEAD = _revisions()[0]


@pytest.fixture
def empty_database(tmp_path: Path) -> Iterator[str]:
    """A database of its own, on the server the suite runs against."""
    server = os.environ.get("IDENTITY_TEST_DATABASE_URL")
    if not server:
        yield f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
        return
    with scratch_postgres(server, "identity_schema") as url:
        yield url


def _set_revision(url: str, revision: str) -> None:
    sync_url = make_url(async_url(url).replace("+asyncpg", "+psycopg").replace("+aiosqlite", ""))
    engine = create_engine(sync_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    engine.dispose()


def _run(url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    env = {**clean, "PYTHONPATH": str(ROOT), "IDENTITY_DATABASE_URL": url}
    env["IDENTITY_SECRET_KEY"] = KEY
    return subprocess.run(
        [sys.executable, "-m", "identity.cli", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        ("none", "not migrated; run `identity migrate`"),
        ("older", "older than this release's"),
        ("newer", "newer than this release's"),
    ],
)
@pytest.mark.parametrize("program", ["serve", "worker"])
def test_a_schema_not_this_releases_is_refused_in_one_line(
    empty_database: str, tmp_path: Path, schema: str, says: str, program: str
) -> None:
    if schema == "older":
        command.upgrade(alembic_config(empty_database), "0009")
    elif schema == "newer":
        command.upgrade(alembic_config(empty_database), "head")
        _set_revision(empty_database, "9999")
    args = ["serve", "--port", str(free_port())] if program == "serve" else ["worker", "--once"]
    done = _run(empty_database, tmp_path, *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "identity listening" not in done.stdout


def test_the_worker_runs_on_this_releases_schema(empty_database: str, tmp_path: Path) -> None:
    """The check refuses only what it should: the newest schema passes."""
    command.upgrade(alembic_config(empty_database), HEAD)
    done = _run(empty_database, tmp_path, "worker", "--once")
    assert done.returncode == 0, done.stderr
