"""Engine, sessions and the one place that owns a transaction.

Services take an `AsyncSession` and never commit; whoever calls `Database.transaction()` (a
route, through `identity.web.Write`; the CLI; a job) owns the commit. SQLite runs every writing
transaction as `BEGIN IMMEDIATE` so that two writers queue on the busy timeout instead of
failing on a stale snapshot; `Database.read()` begins a plain deferred transaction that never
waits for a writer. On SQLite the reads (`read()`, `single_read()`) go through an engine of
their own whose connections refuse to write and run on the event loop's thread
(`identity.sqlite_inline`); the writes keep aiosqlite's thread. The provider's hot statements
(`read_one`, and the token endpoint's transaction, `run_write`) skip SQLAlchemy's execution
layer there (`sqlite_inline.Statements`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import bindparam, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from identity import pg_cache, pg_direct, sqlite_inline
from identity.sqlite_checkpoints import WRITER_PRAGMAS, Checkpoints


def utcnow() -> datetime:
    """Naive UTC: both SQLite and PostgreSQL columns store UTC without a zone."""
    return datetime.now(UTC).replace(tzinfo=None)


def async_url(url: str) -> str:
    """Accept the URLs operators write and pick the async driver for them."""
    for plain, driver in (
        ("postgresql://", "postgresql+psycopg://"),
        ("postgres://", "postgresql+psycopg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def create_private_sqlite_file(url: str) -> None:
    """Create a missing SQLite database file readable by its owner only (0600), as the master key
    file is: it holds session hashes and encrypted secrets. SQLite gives the `-wal` and `-shm`
    files the database file's mode, so they are private too. An existing file is left as it is
    (its mode is the operator's choice); other databases and in-memory SQLite are not files."""
    parsed = make_url(async_url(url))
    path = parsed.database
    if not parsed.drivername.startswith("sqlite") or not path or path == ":memory:":
        return
    if path.startswith("file:"):
        return  # a URI filename: SQLite's to interpret
    # There already, or no such folder (SQLite then says so itself): nothing to do.
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


READ_ONLY = "identity_read_only"
SINGLE_READ = "identity_single_read"


def make_engine(url: str, *, inline_reads: bool = False) -> AsyncEngine:
    """The engine for `url`. On SQLite, `inline_reads` makes one whose connections only read
    (`PRAGMA query_only`) and run on the event loop's thread (`identity.sqlite_inline`)."""
    url = async_url(url)
    if url.startswith("sqlite"):
        create_private_sqlite_file(url)
        if inline_reads:
            path = make_url(url).database or ""
            creator = sqlite_inline.connect(path, timeout=30)
            engine = create_async_engine(url, async_creator=creator, hide_parameters=True)
        else:
            engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            for pragma in ("PRAGMA query_only=ON",) if inline_reads else WRITER_PRAGMAS:
                cursor.execute(pragma)
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            options = conn.get_execution_options()
            if options.get(SINGLE_READ, False):
                return  # one statement needs no transaction of its own
            conn.exec_driver_sql("BEGIN" if options.get(READ_ONLY, False) else "BEGIN IMMEDIATE")

        return engine
    # hide_parameters: a failing statement's message (which may reach a log) never carries
    # the values it was sent, some of which are tokens or personal data.
    return create_async_engine(
        url, pool_size=10, max_overflow=10, pool_pre_ping=True, hide_parameters=True
    )


def _shared_file(url: str) -> bool:
    """A SQLite database that several connections open as one: a file, not `:memory:`."""
    database = make_url(async_url(url)).database
    return bool(database) and database != ":memory:" and "mode=memory" not in str(database)


def insert_for(session: AsyncSession) -> Any:
    """The dialect's INSERT, which has `on_conflict_do_update`/`_do_nothing` on both backends."""
    name = session.get_bind().dialect.name
    return postgresql.insert if name == "postgresql" else sqlite.insert


T = TypeVar("T")

_LOCKS = {
    shared: select(getattr(func, name)(func.hashtext(bindparam("key"))))
    for shared, name in ((False, "pg_advisory_xact_lock"), (True, "pg_advisory_xact_lock_shared"))
}


async def lock(session: AsyncSession | AsyncConnection, key: str, *, shared: bool = False) -> None:
    """Serialise the transactions that write one aggregate (a tenant's department tree) until
    commit, so statements touching overlapping rows in different orders cannot deadlock.
    `shared` holders (logins reading the tenant) exclude only the exclusive ones, not each other.
    PostgreSQL: a transaction-level advisory lock. SQLite: BEGIN IMMEDIATE already serialises
    every writer."""
    bind = session.get_bind() if isinstance(session, AsyncSession) else session
    if bind.dialect.name == "postgresql":
        await session.execute(_LOCKS[shared], {"key": key})


def lock_in(tx: Tx, key: str, *, shared: bool = False) -> None:
    """`lock` in a `Tx`'s transaction."""
    if tx.dialect.name == "postgresql":
        tx.send(_LOCKS[shared], {"key": key})


class Tx(Protocol):
    """A write transaction's statements, for `Database.run_write`'s work (and `in_tx`'s)."""

    dialect: Dialect

    def one(self, statement: sqlite_inline.AnyStatement, parameters: dict[str, Any]) -> Any:
        """The one row (or None) the statement finds, or a change's with RETURNING writes."""

    def run(self, statement: sqlite_inline.AnyChange, parameters: dict[str, Any]) -> int:
        """An INSERT, UPDATE or DELETE; the rows it touched."""

    def send(self, statement: sqlite_inline.AnyStatement, parameters: dict[str, Any]) -> None:
        """A statement whose result the work does not need (a lock, a write). On PostgreSQL, in
        a pipelined transaction (`Database.run_write`), it travels with the next statement that
        waits for its answer, or with the COMMIT, so a transaction costs fewer round trips; if
        it fails, the transaction fails all the same."""


class _CoreTx:
    """`Tx` on a synchronous SQLAlchemy connection (`AsyncConnection.run_sync`)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.dialect = connection.dialect

    def one(self, statement: sqlite_inline.AnyStatement, parameters: dict[str, Any]) -> Any:
        return self.connection.execute(statement, parameters).one_or_none()

    def run(self, statement: sqlite_inline.AnyChange, parameters: dict[str, Any]) -> int:
        return self.connection.execute(statement, parameters).rowcount

    def send(self, statement: sqlite_inline.AnyStatement, parameters: dict[str, Any]) -> None:
        self.connection.execute(statement, parameters)


async def in_tx(connection: AsyncConnection, work: Callable[[Tx], T]) -> T:
    """`work` written for `Database.run_write`, run in `connection`'s transaction instead, with
    the caller's other (async) statements."""
    return await connection.run_sync(lambda sync: work(_CoreTx(sync)))


class Database:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        # Reads on SQLite run on the event loop's thread (identity.sqlite_inline), through
        # an engine of their own; elsewhere they share the one engine.
        self.reader = (
            make_engine(url, inline_reads=True)
            if self.engine.dialect.name == "sqlite" and _shared_file(url)
            else self.engine
        )
        # The hot paths' statements on SQLite (`read_one`, `run_write`): SQLAlchemy's execution
        # layer costs several times the statement itself there (sqlite_inline.Statements).
        path = make_url(async_url(url)).database or ""
        inline = self.reader is not self.engine
        self._statements = sqlite_inline.Statements(path, self.reader.dialect) if inline else None
        self._writes = (
            sqlite_inline.Statements(path, self.engine.dialect, writer=True) if inline else None
        )
        # ... whose write-ahead log is copied back beside the writes (sqlite_checkpoints).
        self._checkpoints = (
            Checkpoints(self.engine, path, single_read=SINGLE_READ) if inline else None
        )
        # On PostgreSQL the same statements go to psycopg directly (pg_direct.Statements).
        postgres = self.engine.dialect.name == "postgresql"
        # (`postgresql+psycopg` names psycopg's synchronous driver as well as its async one)
        self._postgres = (
            pg_direct.Statements(self.engine.dialect, self.engine.url) if postgres else None
        )
        # ... and the rows of the few marked ones are kept while nothing they read changes.
        self._cache = pg_cache.Cache(async_url(url)) if postgres else None
        self.read_sessionmaker = async_sessionmaker(self.reader, expire_on_commit=False)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite admits one writer at a time. Writers of this process queue here, handed over
        # at once, instead of in SQLite's busy handler, which polls with sleeps of up to 100 ms.
        # Other processes still queue on the busy timeout; correctness never depends on this.
        self._writers = asyncio.Lock() if self.engine.dialect.name == "sqlite" else None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls everything back on any exception.
        Never open one inside another in the same task (on SQLite that would wait forever)."""
        async with self._writer_turn(), self.sessionmaker() as session, session.begin():
            yield session

    @asynccontextmanager
    async def _writer_turn(self) -> AsyncIterator[None]:
        if self._writers is None:
            yield
            return
        async with self._writers:
            yield
        if self._checkpoints is not None:
            self._checkpoints.after_write()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work. On SQLite it does not take the write lock, so probes and
        operators are not queued behind a long sync (WAL readers never wait for writers)."""
        async with self.read_sessionmaker() as session:
            await session.connection(execution_options={READ_ONLY: True})
            try:
                yield session
            finally:
                await session.rollback()

    @asynccontextmanager
    async def single_read(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection in autocommit for a hot path's reads: no BEGIN/ROLLBACK around them
        (two round trips saved on PostgreSQL) and no ORM session to set up. Each statement sees
        the latest commits; several statements here do not share a snapshot."""
        options: dict[str, Any] = {SINGLE_READ: True}
        if self.engine.dialect.name != "sqlite":
            options["isolation_level"] = "AUTOCOMMIT"
        async with self.reader.connect() as connection:
            yield await connection.execution_options(**options)

    async def read_one(
        self,
        statement: sqlite_inline.AnySelect,
        parameters: dict[str, Any] | None = None,
        *,
        fresh: bool = False,
    ) -> Any:
        """The one row (or None) of a single-statement read on a hot path, with the attributes
        of SQLAlchemy's `Row`: as `single_read`, each statement sees the latest commits. On
        SQLite it runs on this thread without SQLAlchemy's execution layer
        (`sqlite_inline.Statements`; a module-level statement, compiled once, without an IN
        list); on PostgreSQL likewise, on psycopg's async connections (`pg_direct.Statements`);
        elsewhere (an in-memory SQLite database) through `single_read`.

        On PostgreSQL the rows of a statement marked `pg_cache.cacheable` are kept in the
        process until the database notifies a change to what it reads (`pg_cache.Cache`);
        `fresh` reads it again all the same (and keeps what it finds)."""
        if self._statements is not None:
            return self._statements.one(statement, parameters or {})
        if self._postgres is not None:
            parameters = parameters or {}
            if self._cache is None or not pg_cache.is_cacheable(statement):
                return await self._postgres.one(statement, parameters)
            key = pg_cache.key(statement, parameters)
            row, ticket = self._cache.look(key)
            if row is not pg_cache.MISSING and not fresh:
                return row
            row = await self._postgres.one(statement, parameters)
            self._cache.keep(key, row, ticket)
            return row
        async with self.single_read() as conn:
            return (await conn.execute(statement, parameters)).one_or_none()

    async def run_write(self, work: Callable[[Tx], T], *, pipelined: bool = True) -> T:
        """`work`, a hot path's write transaction of plain statements, run synchronously: it
        commits when `work` returns and rolls back if it raises. On SQLite the statements go to
        `sqlite3` directly, in a worker thread (`sqlite_inline.Statements`: module-level
        statements, compiled once); on PostgreSQL to psycopg's async connections, the work in
        a greenlet on this thread (`pg_direct.Statements`), in pipeline mode unless not
        `pipelined` (for work whose every statement waits for its answer: `Tx.send`'s gain is
        then none, its cost psycopg's); elsewhere through a Core connection."""
        if self._writes is not None:
            async with self._writer_turn():
                return await asyncio.to_thread(self._writes.transaction, work)
        if self._postgres is not None:
            return await self._postgres.transaction(work, pipelined=pipelined)
        async with self.write() as connection:
            return await in_tx(connection, work)

    @property
    def writes_with_ctes(self) -> bool:
        """Whether `write_one` is available: PostgreSQL, whose data-modifying WITH clauses let
        one statement (atomic by itself) do a whole hot write."""
        return self._postgres is not None

    async def write_one(
        self, statement: sqlite_inline.AnyStatement, parameters: dict[str, Any]
    ) -> Any:
        """The one row (or None) of a single statement that writes, run on its own (autocommit:
        one round trip, no BEGIN or COMMIT), as `read_one` runs a read; only where
        `writes_with_ctes`."""
        if self._postgres is None:
            raise RuntimeError("write_one needs PostgreSQL")
        return await self._postgres.one(statement, parameters)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """`transaction()` on a Core connection, for hot paths that need no ORM session."""
        async with self._writer_turn(), self.engine.begin() as connection:
            yield connection

    async def dispose(self) -> None:
        if self._checkpoints is not None:
            await self._checkpoints.close()
        await self.engine.dispose()
        if self.reader is not self.engine:
            await self.reader.dispose()
        if self._postgres is not None:
            await self._postgres.close()
        for statements in (self._statements, self._writes, self._cache):
            if statements is not None:
                statements.close()
