"""Reads on SQLite run on the event loop's thread, through connections that cannot write
(identity.sqlite_inline); writes keep aiosqlite's thread. What a reader would notice: a read
sees every commit made before it, a read that tries to write changes nothing, and the writes
still never stop the event loop."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime

import pytest
from sqlalchemy import bindparam, exc, insert, select, text, update

from identity.db import Database, Tx
from identity.models import Tenant

pytestmark = pytest.mark.usefixtures("db")


@pytest.fixture
def sqlite_only(is_postgres: bool) -> None:
    if is_postgres:
        pytest.skip("PostgreSQL reads share the one engine")


def tenant(code: str) -> dict[str, str]:
    return {
        "tenant_id": f"T-{code}",
        "tenant_code": code,
        "name": code,
        "domain_name": f"{code}.example.com",
        "last_sync_time": "20261206000000000",
    }


async def thread_of(connection: object) -> int:
    """The thread a statement on `connection` runs on, asked of SQLite itself."""
    raw = await connection.get_raw_connection()  # type: ignore[attr-defined]
    raw.driver_connection._conn.create_function("thread_id", 0, threading.get_ident)
    return int(await connection.scalar(text("SELECT thread_id()")))  # type: ignore[attr-defined]


@pytest.mark.usefixtures("sqlite_only")
async def test_a_read_runs_on_the_event_loops_thread_and_a_write_does_not(
    database_url: str,
) -> None:
    db = Database(database_url)
    try:
        async with db.single_read() as conn:
            assert await thread_of(conn) == threading.get_ident()
        async with db.write() as conn:
            assert await thread_of(conn) != threading.get_ident()
    finally:
        await db.dispose()


async def test_a_read_sees_what_was_committed_before_it(database_url: str) -> None:
    db = Database(database_url)
    try:
        for n in range(3):
            async with db.transaction() as session:
                await session.execute(insert(Tenant).values(tenant(f"t{n}")))
            async with db.single_read() as conn:
                assert await conn.scalar(select(Tenant.name).filter_by(tenant_id=f"T-t{n}"))
            async with db.read() as session:
                assert await session.get(Tenant, f"T-t{n}") is not None
            row = await db.read_one(select(Tenant.name).filter_by(tenant_id=f"T-t{n}"))
            assert row is not None and row.name == f"t{n}"
        assert await db.read_one(select(Tenant.name).filter_by(tenant_id="T-none")) is None
    finally:
        await db.dispose()


async def test_a_hot_paths_read_returns_what_sqlalchemy_returns(database_url: str) -> None:
    """`read_one` (without SQLAlchemy's execution layer, on SQLite and PostgreSQL alike)
    converts every value as SQLAlchemy does: times, flags, text; and refuses a statement that
    finds two rows."""
    db = Database(database_url)
    try:
        async with db.transaction() as session:
            await session.execute(insert(Tenant).values([tenant("a"), tenant("b")]))
        both = select(Tenant.tenant_id, Tenant.created_at, Tenant.name, Tenant.tenant_id == "T-a")
        one = both.where(Tenant.tenant_code == bindparam("code"))
        row = await db.read_one(one, {"code": "a"})
        async with db.single_read() as conn:
            expected = (await conn.execute(one, {"code": "a"})).one()
        assert row is not None and tuple(row) == tuple(expected)
        assert isinstance(row.created_at, datetime) and row._asdict()["tenant_id"] == "T-a"
        assert await db.read_one(one, {"code": "none"}) is None
        with pytest.raises(exc.MultipleResultsFound):
            await db.read_one(both, {})
        with pytest.raises(TypeError, match="IN list"):  # compiled once, IN lists apart
            await db.read_one(both.where(Tenant.tenant_id.in_(["T-a", "T-z"])))
    finally:
        await db.dispose()


ADD = insert(Tenant).values(
    tenant_id=bindparam("id"),
    tenant_code=bindparam("code"),
    name=bindparam("code_name"),
    domain_name="example.com",
    state="active",
    last_sync_time="20261206000000000",
    created_at=bindparam("at"),
    updated_at=bindparam("at"),
)
RENAME = (
    update(Tenant)
    .where(Tenant.tenant_code == bindparam("code"))
    .values(name="renamed", updated_at=bindparam("at"))
)
NAME = select(Tenant.name, Tenant.created_at).where(Tenant.tenant_code == bindparam("code"))


async def test_a_hot_paths_write_commits_whole_or_not_at_all(database_url: str) -> None:
    """`run_write` (straight to `sqlite3` or psycopg, in a thread): what the work wrote is
    there after it returns, with its values converted as SQLAlchemy would; nothing of it is
    there after it raises."""
    db = Database(database_url)
    at = datetime(2026, 12, 6, 8, 30, 0, 123456)

    def add(tx: Tx, code: str) -> int:
        tx.run(ADD, {"id": f"T-{code}", "code": code, "code_name": code, "at": at})
        return tx.run(RENAME, {"code": code, "at": at})

    def add_then_fail(tx: Tx) -> None:
        add(tx, "b")
        raise ValueError("the work failed")

    try:
        assert await db.run_write(lambda tx: add(tx, "a")) == 1
        assert tuple(await db.read_one(NAME, {"code": "a"})) == ("renamed", at)
        with pytest.raises(ValueError, match="the work failed"):
            await db.run_write(add_then_fail)
        assert await db.read_one(NAME, {"code": "b"}) is None
        assert await db.run_write(lambda tx: add(tx, "b")) == 1  # the failure left no lock
        # compiled once: values SQLAlchemy would compute in Python are refused
        with pytest.raises(TypeError, match="every value itself: updated_at"):
            await db.run_write(lambda tx: tx.run(update(Tenant).values(name="x"), {}))
        # compiled once, an INSERT without its columns would ask for every column's value
        with pytest.raises(TypeError, match="INSERT names its columns"):
            await db.run_write(lambda tx: tx.run(insert(Tenant), {"tenant_id": "T-c"}))
    finally:
        await db.dispose()


@pytest.mark.usefixtures("sqlite_only")
async def test_a_read_that_tries_to_write_is_refused_and_changes_nothing(
    database_url: str,
) -> None:
    db = Database(database_url)
    write = insert(Tenant).values(tenant("x"))
    try:
        async with db.single_read() as conn:
            with pytest.raises(exc.OperationalError, match="readonly"):
                await conn.execute(write)
        async with db.read() as session:
            with pytest.raises(exc.OperationalError, match="readonly"):
                await session.execute(write)
        async with db.single_read() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM tenants")) == 0
    finally:
        await db.dispose()


@pytest.mark.usefixtures("sqlite_only")
async def test_a_writer_waiting_for_another_process_does_not_stop_reads(
    database_url: str,
) -> None:
    """Another connection holds the write lock (as another process would): a writer here waits
    on the busy timeout in aiosqlite's thread while reads go on."""
    db, other = Database(database_url), Database(database_url)
    try:
        async with other.write() as held:
            await held.execute(insert(Tenant).values(tenant("h")))
            waiting = asyncio.create_task(_write_one(db))
            for _ in range(5):
                async with db.single_read() as conn:
                    assert await conn.scalar(text("SELECT count(*) FROM tenants")) == 0
                await asyncio.sleep(0.05)
            assert not waiting.done()
        await asyncio.wait_for(waiting, 10)
        async with db.single_read() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM tenants")) == 2
    finally:
        await db.dispose()
        await other.dispose()


async def _write_one(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(insert(Tenant).values(tenant("w")))
