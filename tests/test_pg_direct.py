"""The hot paths' statements on PostgreSQL (`identity.pg_direct`): connections that stay open
and statements planned once on each, which is what keeps a token call's tail short there."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import bindparam, func, literal_column, select, text

from identity import pg_direct
from identity.db import Database, Tx
from identity.models import OidcGrant

_BACKEND = select(func.pg_backend_pid().label("pid"))
_PREPARED = select(
    select(func.count())
    .select_from(text("pg_prepared_statements"))
    .where(literal_column("generic_plans") > 0)
    .scalar_subquery()
    .label("generic")
)
_GRANT = select(OidcGrant.grant_id).where(OidcGrant.grant_id == bindparam("grant_id"))


@pytest.fixture
def postgres(is_postgres: bool) -> None:
    if not is_postgres:
        pytest.skip("PostgreSQL only: SQLite has no connections to keep or plans to cache")


async def test_busy_reads_reuse_the_same_connections(postgres: None, db: Database) -> None:
    """Many concurrent reads, more than the pool holds, open no more connections than it holds,
    and none is closed when handed back: the connections of the first burst are all still open
    after the second."""
    first = await asyncio.gather(*(db.read_one(_BACKEND) for _ in range(200)))
    again = await asyncio.gather(*(db.read_one(_BACKEND) for _ in range(200)))
    pids = {row.pid for row in first}
    assert len(pids | {row.pid for row in again}) <= pg_direct.POOL
    async with db.single_read() as conn:
        open_ = await conn.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"),
            {"pids": sorted(pids)},
        )
    assert open_ == len(pids)


async def test_a_statement_is_planned_once_per_connection(postgres: None, db: Database) -> None:
    """A hot statement is prepared at its first use and runs on a generic plan from then on,
    instead of being planned for each of its first ten executions on every connection."""
    statements = db._postgres
    assert statements is not None

    def work(tx: Tx) -> int:
        tx.one(_GRANT, {"grant_id": "no-such-grant"})
        return int(tx.one(_PREPARED, {}).generic)

    # One connection: its statements' plans are counted by PostgreSQL per connection.
    assert await statements.transaction(work) >= 1
