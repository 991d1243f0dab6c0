"""Processes and databases for the fault tests (tests/test_faults.py): `identity serve` and
`identity worker` as real processes, a kit call's raw request, and a trigger that holds a sync
in the middle of its transaction, with a way to see that a transaction is writing."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from identity.db import Database
from identity.marketplace.signing import Kind, sign_body
from tests.helpers.marketplace_client import BASIC_KEY, KIT_KEY, SECRET_KEY, encode
from tests.helpers.servers import free_port, service_env, wait_ready


@contextmanager
def serving(database_url: str, **more: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`identity serve` on a free port, one process (`--workers 1`: the process a test kills
    is the one answering) in a process group of its own (`kill`), its URL and process; the
    group is killed afterwards."""
    port = free_port()
    env = service_env(database_url, secret_key=SECRET_KEY, basic_key=BASIC_KEY, kit_key=KIT_KEY)
    argv = [sys.executable, "-m", "identity.cli", "serve", "--port", str(port), "--workers", "1"]
    with subprocess.Popen(
        argv,
        env=env | more,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, process)
            yield url, process
        finally:
            kill(process)


def kill(process: subprocess.Popen[str]) -> None:
    """SIGKILL to the server and what it started (the signature checker's worker processes,
    which a killed parent would leave behind), as a crash of the host would."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def migrate(database_url: str) -> None:
    env = service_env(database_url, secret_key=SECRET_KEY, basic_key=BASIC_KEY, kit_key=KIT_KEY)
    done = subprocess.run(  # noqa: S603 - our own command
        [sys.executable, "-m", "identity.cli", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def signed_request(name: str, body: dict[str, Any]) -> tuple[bytes, bytes]:
    """The head and body of a kit call as the marketplace sends it, a new nonce each time."""
    raw = encode(body)
    nonce, timestamp = uuid.uuid4().hex, str(int(time.time() * 1000))
    signature = sign_body(Kind.KIT, KIT_KEY, nonce, timestamp, raw)
    head = (
        f"POST /koogallery/produceAPI/v2/{name} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n"
        f"x-sign: {signature}\r\nx-timestamp: {timestamp}\r\nx-nonce: {nonce}\r\n\r\n"
    )
    return head.encode(), raw


SLOW_ROW = "u0250"
SLOW_WRITE = {
    "sqlite": [
        # About 2 s of work before the 251st authorisation is written: SQLite cannot sleep.
        "CREATE TRIGGER slow_write BEFORE INSERT ON authorisations "
        f"WHEN NEW.user_name = '{SLOW_ROW}' BEGIN SELECT count(*) FROM (WITH RECURSIVE "
        "c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 6000000) SELECT x FROM c); END"
    ],
    "postgresql": [
        "CREATE FUNCTION slow_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF NEW.user_name = '{SLOW_ROW}' THEN PERFORM pg_sleep(2); END IF; RETURN NEW; END $$",
        "CREATE TRIGGER slow_write BEFORE INSERT ON authorisations "
        "FOR EACH ROW EXECUTE FUNCTION slow_write()",
    ],
}
FAST_WRITE = {
    "sqlite": ["DROP TRIGGER slow_write"],
    "postgresql": ["DROP TRIGGER slow_write ON authorisations", "DROP FUNCTION slow_write()"],
}


@asynccontextmanager
async def slow_write(db: Database) -> AsyncIterator[None]:
    """A trigger that holds the sync for about 2 s once the members and 250 of the 500
    authorisations are written, inside its transaction: a kill then lands mid-write."""
    dialect = db.engine.dialect.name
    async with db.transaction() as session:
        for statement in SLOW_WRITE[dialect]:
            await session.execute(text(statement))
    try:
        yield
    finally:
        async with db.transaction() as session:
            for statement in FAST_WRITE[dialect]:
                await session.execute(text(statement))


async def writing(db: Database) -> bool:
    """Whether another connection is inside a writing transaction."""
    if db.engine.dialect.name == "postgresql":
        others = text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
        )
        async with db.single_read() as conn:
            return bool(await conn.scalar(others))
    path = make_url(db.engine.url).database
    probe = sqlite3.connect(str(path), timeout=0)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:  # database is locked: a writer holds it
        return True
    finally:
        probe.close()


@contextmanager
def worker(database_url: str) -> Iterator[subprocess.Popen[str]]:
    """`identity worker`, looking for due logouts every 0.1 s; killed afterwards."""
    env = service_env(database_url, secret_key=SECRET_KEY, basic_key=BASIC_KEY, kit_key=KIT_KEY)
    env["IDENTITY_BACKCHANNEL_POLL_SECONDS"] = "0.1"
    argv = [sys.executable, "-m", "identity.cli", "worker"]
    with subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, text=True) as process:
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
