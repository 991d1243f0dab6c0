"""The hot reads' rows kept in each process on PostgreSQL (`identity.pg_cache`): two identity
processes on one database, B's rows warm, access ended at A or by the CLI, and B must say so at
the very next request. Also: the triggers cover every column the kept statements read, and a
lost listening connection never leaves B answering from stale rows."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx2 as httpx
import psycopg
import pytest
from alembic import command
from joserfc import jws
from pydantic import SecretStr
from sqlalchemy import Column, create_engine, text, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.sql import visitors

from identity import pg_cache
from identity.db import Database
from identity.migrate import alembic_config, upgrade
from identity.models import Member, Tenant
from identity.pg_cache import INSERTS_UNHEARD, marked
from identity.provider import client_grant, clients, grants, logout, service
from identity.simulator import sender as events
from identity.sso import admission
from tests.helpers.cli import run_cli
from tests.helpers.marketplace_client import SECRET_KEY
from tests.helpers.oidc_app import App, register, tokens_for
from tests.helpers.servers import scratch_postgres
from tests.helpers.simulator_world import world
from tests.helpers.stack import Browser, Stack, running_stack
from tests.helpers.waiting import until_sync

Ending = Callable[[Stack, App, Browser, dict[str, str], str, Path], Awaitable[None]]


@pytest.fixture(scope="module")
async def two(database_url: str, is_postgres: bool, private_key_file: Path) -> AsyncIterator[Stack]:
    if not is_postgres:
        pytest.skip(
            "the kept rows and their notifications are PostgreSQL's: set "
            "IDENTITY_TEST_DATABASE_URL (on SQLite every read goes to the database)"
        )
    async with running_stack(
        database_url, private_key_file, world(), identity_processes=2
    ) as running:
        yield running


@pytest.fixture(scope="module")
def sync_engine(database_url: str) -> Iterator[Engine]:
    url = make_url(database_url).set(drivername="postgresql+psycopg")
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture
async def acme_app(two: Stack, db: Database) -> AsyncIterator[App]:
    two.reset()
    await two.provision("acme")
    async with httpx.AsyncClient(timeout=30) as http:
        yield await register(two, db, http)


def at(app: App, url: str) -> App:
    """The same app talking to another identity process."""
    config = {k: v.replace(app.config["issuer"], url) if isinstance(v, str) else v
              for k, v in app.config.items()}  # fmt: skip
    return replace(app, config=config)


def listener_of(engine: Engine, pid: int) -> int | None:
    """The server process of identity process `pid`'s listening connection, once it listens."""
    with engine.connect() as conn:
        return conn.scalar(
            text(
                "SELECT pid FROM pg_stat_activity WHERE application_name = :name "
                "AND query LIKE 'LISTEN%'"
            ),
            {"name": f"identity-listener-{pid}"},
        )


def listening(engine: Engine, stack: Stack, index: int) -> int:
    pid = stack.processes[0].processes[index].pid
    found: list[int] = []

    def up() -> bool:
        backend = listener_of(engine, pid)
        found[:] = [backend] if backend else []
        return bool(found)

    until_sync(up, "identity process listening for changes", within=15, every=0.05)
    return found[0]


async def answers(app: App, token: str) -> tuple[int, bool | None, int]:
    """(introspection's status, its `active`, userinfo's status)."""
    seen = await app.post("introspection_endpoint", token=token)
    info = await app.http.get(
        app.config["userinfo_endpoint"], headers={"Authorization": f"Bearer {token}"}
    )
    active = seen.json().get("active") if seen.status_code == 200 else None
    return seen.status_code, active, info.status_code


ACTIVE = (200, True, 200)


async def warm(engine: Engine, stack: Stack, app_b: App, token: str) -> None:
    kid = jws.extract_compact(token.encode()).protected["kid"]
    for _ in range(50):  # each test's keys are new: B reads them again when its JWKS is asked
        if kid in {
            key["kid"] for key in (await app_b.http.get(app_b.config["jwks_uri"])).json()["keys"]
        }:
            break
        await asyncio.sleep(0.1)
    assert await answers(app_b, token) == ACTIVE  # the first kept read opens the listener
    listening(engine, stack, 1)
    await asyncio.sleep(0.1)  # LISTEN answered: the process now keeps what it reads
    for _ in range(3):
        assert await answers(app_b, token) == ACTIVE


async def warm_at_b(two: Stack, acme_app: App, engine: Engine) -> tuple[str, App]:
    """A member's access token, and the app as process B sees it, B keeping its rows."""
    browser = two.browser()
    try:
        token = (await tokens_for(acme_app, browser))["access_token"]
    finally:
        await browser.close()
    app_b = at(acme_app, two.identity_urls[1])
    await warm(engine, two, app_b, token)
    return token, app_b


def unheard(engine: Engine, statement: str) -> None:
    """A change that fires no trigger (as a replica applies it): no process hears of it."""
    with engine.connect() as conn:  # autocommit: each statement its own transaction
        conn.execute(text("SET session_replication_role = replica"))
        try:
            conn.execute(text(statement))
        finally:
            conn.execute(text("RESET session_replication_role"))


async def test_the_triggers_cover_every_column_the_kept_statements_read(
    two: Stack, sync_engine: Engine
) -> None:
    service._in_force(("a", "b"))  # the keys' statements are built per key set
    kept = set(marked())
    assert {
        grants._LIVE_SIGNED,
        clients._CREDENTIALS,
        client_grant._LIVE,
        admission._CLIENT,
        logout._LANDING,
    } <= kept
    read: set[tuple[str, str]] = set()
    for statement in kept:
        for element in visitors.iterate(statement, {"column_collections": False}):
            if isinstance(element, Column) and element.table is not None:
                read.add((element.table.name, element.name))
    with sync_engine.connect() as conn:
        watched = conn.execute(
            text(
                "SELECT c.relname, a.attname, t.tgtype FROM pg_trigger t "
                "JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_attribute a ON a.attrelid = t.tgrelid AND a.attnum = ANY(t.tgattr) "
                "WHERE t.tgname = 'identity_changes'"
            )
        ).all()
    covered = {(table, column) for table, column, _ in watched}
    # the session's use, deliberately unheard: `grants.live_signed` reads an idle row again
    assert read - covered == {("sessions", "last_seen_at")}
    # statement level (bit 0 clear), AFTER (bit 1 clear), INSERT 4, DELETE 8, UPDATE 16,
    # TRUNCATE 32; no INSERT on the tables every sign-in writes (their "not found" is not kept)
    events = {table: tgtype for table, _, tgtype in watched}
    assert {t for t, tgtype in events.items() if tgtype == 8 | 16 | 32} == INSERTS_UNHEARD
    assert set(events.values()) == {4 | 8 | 16 | 32, 8 | 16 | 32}
    for statement in kept:  # what a statement that reads them keeps is explained in pg_cache
        tables = {table for table, _ in pg_cache.reads(statement)}
        assert not tables & INSERTS_UNHEARD or statement is grants._LIVE_SIGNED


async def test_b_keeps_rows_until_told(
    two: Stack, acme_app: App, db: Database, sync_engine: Engine
) -> None:
    """What the other tests rely on: B answers from kept rows. A change no trigger reports
    goes unseen at B, while A, which never read this token, sees it; a heard change reaches
    both."""
    token, app_b = await warm_at_b(two, acme_app, sync_engine)
    unheard(sync_engine, "UPDATE tenants SET state = 'deleted'")
    assert await answers(app_b, token) == ACTIVE
    assert await answers(acme_app, token) == (200, False, 401)
    async with db.transaction() as session:  # heard: restores access everywhere
        await session.execute(update(Tenant).values(state="active"))
    assert await answers(app_b, token) == ACTIVE


async def test_sign_ins_at_a_leave_b_its_rows_and_an_ended_token_is_never_kept(
    two: Stack, acme_app: App, db: Database, sync_engine: Engine, database_url: str
) -> None:
    """Another member signing in and signing in to the app at A (a session, its app and a
    grant inserted) makes B forget nothing: it still answers from what it kept. A token found
    inactive is read from the database at each request, so no sign-in can leave a stale "no"."""
    token, app_b = await warm_at_b(two, acme_app, sync_engine)
    unheard(sync_engine, "UPDATE members SET state = 'deleted' WHERE user_name = 'alice'")
    try:
        assert await answers(app_b, token) == ACTIVE
        browser = two.browser()
        try:
            await tokens_for(acme_app, browser, account="bob@acme")
        finally:
            await browser.close()
        for _ in range(10):  # a notification would reach B within milliseconds
            await asyncio.sleep(0.1)
            assert await answers(app_b, token) == ACTIVE  # still kept: nothing was heard
    finally:
        async with db.transaction() as session:  # heard: B reads the member again
            await session.execute(
                update(Member).where(Member.user_name == "alice").values(state="active")
            )
    assert await answers(app_b, token) == ACTIVE

    cache = pg_cache.Cache(database_url)
    try:
        until_sync(lambda: cache.listening, "the cache listening", within=10, every=0.05)
        ended = pg_cache.key(grants._LIVE_SIGNED, {"grant_id": "ended", "kid": "k"})
        unknown = pg_cache.key(admission._CLIENT, {"tenant_id": "nobody", "app_id": "a"})
        for key in (ended, unknown):
            cache.keep(key, None, cache.look(key)[1])
        assert cache.look(ended)[0] is pg_cache.MISSING  # read again next time
        assert cache.look(unknown)[0] is None  # kept: a new tenant or credential is heard
    finally:
        cache.close()


async def _revoke_refresh(
    stack: Stack, app: App, browser: Browser, issued: dict[str, str], db_url: str, cwd: Path
) -> None:
    done = await app.post("revocation_endpoint", token=issued["refresh_token"])
    assert done.status_code == 200


async def _disable_member(
    stack: Stack, app: App, browser: Browser, issued: dict[str, str], db_url: str, cwd: Path
) -> None:
    await events.disable_member(stack.sender, stack.tenant("acme"), "alice")


async def _log_out(
    stack: Stack, app: App, browser: Browser, issued: dict[str, str], db_url: str, cwd: Path
) -> None:
    ended = await browser.http.get(
        app.config["end_session_endpoint"], params={"id_token_hint": issued["id_token"]}
    )
    assert ended.status_code in (302, 303), ended.text


async def _remove_client(
    stack: Stack, app: App, browser: Browser, issued: dict[str, str], db_url: str, cwd: Path
) -> None:
    done = await asyncio.to_thread(run_cli, db_url, cwd, "clients", "remove", app.client_id)
    assert done.returncode == 0, done.stderr


async def _revoke_key(
    stack: Stack, app: App, browser: Browser, issued: dict[str, str], db_url: str, cwd: Path
) -> None:
    kid = jws.extract_compact(issued["access_token"].encode()).protected["kid"]
    done = await asyncio.to_thread(run_cli, db_url, cwd, "keys", "revoke", kid)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("ending", "after"),
    [
        (_revoke_refresh, (200, False, 401)),
        (_disable_member, (200, False, 401)),
        (_log_out, (200, False, 401)),
        (_remove_client, (401, None, 401)),
        (_revoke_key, (200, False, 401)),
    ],
    ids=["grant-revoked", "member-disabled", "logged-out", "client-removed", "key-revoked"],
)
async def test_access_ended_elsewhere_ends_at_b_at_the_next_request(
    two: Stack,
    acme_app: App,
    sync_engine: Engine,
    database_url: str,
    tmp_path: Path,
    ending: Ending,
    after: tuple[int, bool | None, int],
) -> None:
    browser = two.browser()
    try:
        issued = await tokens_for(acme_app, browser)
        app_b = at(acme_app, two.identity_urls[1])
        await warm(sync_engine, two, app_b, issued["access_token"])
        await ending(two, acme_app, browser, issued, database_url, tmp_path)
        assert await answers(app_b, issued["access_token"]) == after
    finally:
        await browser.close()


async def test_a_lost_listener_leaves_no_stale_answer_and_is_listening_again(
    two: Stack, acme_app: App, db: Database, sync_engine: Engine
) -> None:
    token, app_b = await warm_at_b(two, acme_app, sync_engine)
    backend = listening(sync_engine, two, 1)
    with sync_engine.connect() as conn:
        assert conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})

    def gone() -> bool:
        with sync_engine.connect() as conn:
            found = conn.scalar(
                text("SELECT 1 FROM pg_stat_activity WHERE pid = :p"), {"p": backend}
            )
        return found is None

    until_sync(gone, "the listening backend ended", within=10, every=0.02)
    # a change nobody hears: B must not answer from what it kept before the connection ended
    unheard(sync_engine, "UPDATE tenants SET state = 'deleted'")
    assert await answers(app_b, token) == (200, False, 401)
    async with db.transaction() as session:
        await session.execute(update(Tenant).values(state="active"))
    assert await answers(app_b, token) == ACTIVE

    assert listening(sync_engine, two, 1) != backend  # listening again, on a new connection
    await warm(sync_engine, two, app_b, token)
    unheard(sync_engine, "UPDATE tenants SET state = 'deleted'")
    assert await answers(app_b, token) == ACTIVE  # and keeping rows again
    async with db.transaction() as session:
        await session.execute(update(Tenant).values(state="active"))


async def test_a_sign_in_at_b_uses_what_it_kept_until_the_tenant_changes(
    two: Stack, acme_app: App, sync_engine: Engine
) -> None:
    """B keeps the tenant's client for its sign-ins. Sign-ins write sessions all the time,
    which must not empty it; a change to the tenant's credentials must, at once."""
    browser = two.browser()
    app_id, tenant_id = two.scenario.app_id, two.tenant("acme").tenant_id

    async def sign_in_at_b() -> int:
        query = await browser.code_for("alice@acme", "alice-pw")
        landed = await browser.http.get(
            f"{two.identity_urls[1]}/sso/callback/{app_id}", params=query
        )
        return landed.status_code

    def client_id(value: str, *, heard: bool) -> None:
        change = (
            f"UPDATE app_credentials SET client_id = '{value}' "
            f"WHERE tenant_id = '{tenant_id}' AND app_id = '{app_id}'"
        )
        if heard:
            with sync_engine.connect() as conn:
                conn.execute(text(change))
        else:
            unheard(sync_engine, change)

    original = two.tenant("acme").client_id
    try:
        assert await sign_in_at_b() == 303  # B's listener opens at its first kept read
        listening(sync_engine, two, 1)
        await asyncio.sleep(0.1)  # LISTEN answered
        assert await sign_in_at_b() == 303  # now B keeps the row
        client_id("not-the-auth-centres", heard=False)
        assert await sign_in_at_b() == 303  # kept: the auth centre still knows the old id
        assert await sign_in_at_b() == 303  # the sign-in just now wrote sessions: still kept
        client_id("not-the-auth-centres", heard=True)
        assert await sign_in_at_b() != 303  # heard: B asks the auth centre with the new id
        client_id(original, heard=True)
        assert await sign_in_at_b() == 303
    finally:
        client_id(original, heard=True)
        await browser.close()


async def test_a_notification_forgets_only_the_rows_that_read_its_table(
    is_postgres: bool, database_url: str, sync_engine: Engine
) -> None:
    """One process's cache against the real database: a notification naming a table forgets
    the statements that read it, and nothing else; one naming no known table forgets all."""
    if not is_postgres:
        pytest.skip("the notifications are PostgreSQL's")
    cache = pg_cache.Cache(database_url)
    tenant = pg_cache.key(admission._CLIENT, {"tenant_id": "t", "app_id": "a"})
    grant = pg_cache.key(grants._LIVE_SIGNED, {"grant_id": "g", "kid": "k"})

    def kept() -> set[str]:
        found = {name for name, key in (("client", tenant), ("grant", grant))
                 if cache.look(key)[0] is not pg_cache.MISSING}  # fmt: skip
        return found

    def notify(payload: str) -> None:
        with sync_engine.connect() as conn:
            conn.execute(text("SELECT pg_notify('identity_changes', :p)"), {"p": payload})

    def keep_both() -> None:
        for key in (tenant, grant):
            cache.keep(key, ("row",), cache.look(key)[1])

    try:
        until_sync(lambda: cache.listening, "the cache listening", within=10, every=0.05)
        keep_both()
        assert kept() == {"client", "grant"}
        notify("sessions")  # a session ended: the liveness reads sessions, the client does not
        until_sync(lambda: kept() == {"client"}, "the grant's row forgotten", within=5)
        keep_both()
        notify("app_credentials")  # both read it (the liveness checks the app's credential)
        until_sync(lambda: kept() == set(), "both rows forgotten", within=5)
        keep_both()
        notify("")  # revision 0017's payload, or an older process's: everything
        until_sync(lambda: kept() == set(), "every row forgotten", within=5)
    finally:
        cache.close()


def _triggers(url: str) -> dict[str, bool]:
    """Each table with the trigger, and whether an INSERT into it notifies (its INSERT bit)."""
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT c.relname, t.tgtype & 4 = 4 FROM pg_trigger t "
                    "JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname = 'identity_changes'"
                )
            )
            return {name: bool(heard) for name, heard in rows}
    finally:
        engine.dispose()


def _payload(url: str) -> str:
    """The notification a change to `tenants` sends (made and heard on two connections)."""
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(conninfo, autocommit=True) as listener:
        listener.execute("LISTEN identity_changes")
        with psycopg.connect(conninfo, autocommit=True) as writer:
            writer.execute("UPDATE tenants SET state = state")
        notice = next(listener.notifies(timeout=5, stop_after=1))
        return notice.payload


def _inserts_heard(url: str) -> set[str]:
    """The tables among those every sign-in writes whose INSERT notifies."""
    return {table for table, heard in _triggers(url).items() if heard} & INSERTS_UNHEARD


async def test_revisions_0017_to_0020_add_the_triggers_and_go_back_without_them(
    is_postgres: bool,
) -> None:
    if not is_postgres:
        pytest.skip("the triggers are PostgreSQL's; on SQLite these revisions change nothing")
    server = os.environ["IDENTITY_TEST_DATABASE_URL"]
    with scratch_postgres(server, "identity_notices") as url:
        config = alembic_config(url, SecretStr(SECRET_KEY))
        await asyncio.to_thread(upgrade, url)
        assert len(_triggers(url)) == 11
        assert _payload(url) == "tenants"
        assert _inserts_heard(url) == set()
        await asyncio.to_thread(command.downgrade, config, "0019")
        assert _inserts_heard(url) == INSERTS_UNHEARD
        await asyncio.to_thread(command.downgrade, config, "0017")
        assert len(_triggers(url)) == 11
        assert _payload(url) == ""  # heard by every process as "forget everything"
        await asyncio.to_thread(command.downgrade, config, "0016")
        assert _triggers(url) == {}
        await asyncio.to_thread(command.upgrade, config, "head")
        assert len(_triggers(url)) == 11
        assert _payload(url) == "tenants"
