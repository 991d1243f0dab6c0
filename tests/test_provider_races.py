"""A refresh racing the end of its grant, on PostgreSQL: they wait for each other, one after
the other, and neither fails. identity and the simulator as processes; the ending in this
process, as the worker or an admin would run it; the interleaving held in place by a third
connection, so the race is the same in every run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx2 as httpx
import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from identity.access import end_grants, end_sessions
from identity.db import Database
from identity.models import OidcGrant
from tests.helpers.oidc_app import App, tokens_for
from tests.helpers.stack import Browser
from tests.helpers.waiting import until

Ending = Callable[[Database, str, str], Awaitable[None]]


async def _end_session(db: Database, grant_id: str, sid: str) -> None:
    async with db.transaction() as session:
        await end_sessions(session, [sid])


async def _end_grant(db: Database, grant_id: str, sid: str) -> None:
    async with db.transaction() as session:
        await end_grants(session, [grant_id])


@pytest.fixture
async def watcher(database_url: str, is_postgres: bool) -> AsyncIterator[psycopg.AsyncConnection]:
    if not is_postgres:
        pytest.skip("SQLite takes one writer at a time: there is nothing to interleave")
    async with await psycopg.AsyncConnection.connect(
        _conninfo(database_url), autocommit=True
    ) as connection:
        yield connection


def _conninfo(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


async def _has(watcher: psycopg.AsyncConnection, count: int) -> bool:
    """Whether at least `count` statements of this database wait for a lock."""
    found = await watcher.execute(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    row = await found.fetchone()
    return row is not None and int(row[0]) >= count


@pytest.mark.parametrize(
    ("ending", "refresh_first", "answered"),
    [(_end_session, False, 400), (_end_grant, True, 200)],
    ids=["session", "grant"],
)
async def test_a_refresh_and_the_end_of_its_grant_at_once_both_complete(
    app: App,
    browser: Browser,
    db: Database,
    database_url: str,
    watcher: psycopg.AsyncConnection,
    ending: Ending,
    refresh_first: bool,
    answered: int,
) -> None:
    """Another transaction holds the session's row while the two start, the ending of the
    whole session first or the refresh before the revocation of its grant, each then going as
    far as it can; then the row is let go. When an ending took the session or the grant before
    the refresh token, it waited for the refresh's token while the refresh waited for the
    session or the grant: PostgreSQL broke the deadlock after a second by failing one of them
    (a 503, or an ending that did not happen). Now the one that has the token goes first."""
    issued = await tokens_for(app, browser)
    async with db.read() as session:
        of_app = select(OidcGrant.grant_id, OidcGrant.sid).where(
            OidcGrant.client_id == app.client_id
        )
        grant_id, sid = (await session.execute(of_app)).one()

    def refresh() -> asyncio.Task[httpx.Response]:
        token = issued["refresh_token"]
        return asyncio.create_task(
            app.post("token_endpoint", grant_type="refresh_token", refresh_token=token)
        )

    async with await psycopg.AsyncConnection.connect(_conninfo(database_url)) as holder:
        await holder.execute("SELECT 1 FROM sessions WHERE sid = %s FOR UPDATE", [sid])
        first = refresh() if refresh_first else asyncio.create_task(ending(db, grant_id, sid))
        await until(lambda: _has(watcher, 1), "the first waits for the session")
        second = asyncio.create_task(ending(db, grant_id, sid)) if refresh_first else refresh()
        await until(lambda: _has(watcher, 2), "the second waits for what the first took")
        await holder.rollback()
    refreshed = first if refresh_first else second
    await asyncio.gather(first, second)  # an ending that failed raises here
    answer = refreshed.result()
    assert answer.status_code == answered, answer.text
    after = [issued["access_token"]]
    if answered == 400:
        assert answer.json()["error"] == "invalid_grant"
    else:  # issued, then ended with the rest of the grant
        after.append(answer.json()["access_token"])
        again = answer.json()["refresh_token"]
        spent = await app.post("token_endpoint", grant_type="refresh_token", refresh_token=again)
        assert spent.json()["error"] == "invalid_grant"
    for token in after:
        seen = await app.post("introspection_endpoint", token=token)
        assert seen.json() == {"active": False}
