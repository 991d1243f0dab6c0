"""PostgreSQL's counterpart of `identity.sqlite_inline.Statements`: the hot paths' statements
sent on psycopg's async connections directly, on the event loop; a write transaction's in
psycopg's pipeline mode, its work run in a greenlet.

Through SQLAlchemy's async engine a one-row read cost about 0.8 ms of CPU (the pool's
checkout in a task, psycopg's async adapter, the result machinery), several times the work of
the statement (docs/architecture.md, Performance). Here each Core statement is compiled once
for PostgreSQL (`sqlite_inline.Compiled`: the types' own converters, rows as SQLAlchemy's) and
sent on a psycopg `AsyncConnection` from a small pool of this module's own (`_Pool`), opened
as the async engine's dialect opens its own (the same parameters and type adapters).

A write transaction's work (`identity.db.Tx`) is plain synchronous code, shared with SQLite's
worker thread. Here it runs in a greenlet on the event loop's thread (SQLAlchemy's
`greenlet_spawn`), and each of its statements hands the wait for PostgreSQL's answer back to
the loop (`await_only`). It used to run in a worker thread: psycopg lets go of the GIL around
every call into libpq, and on a busy process each of those became a hand-over between that
thread and the loop's (about 250 futex calls per login, a third of the login's CPU in the
kernel).

Round trips, more than statements, are what a busy machine makes slow: each waits for the
server's process and then for this process to be scheduled again. So a write transaction runs
in pipeline mode: BEGIN and every statement sent with `send` (a lock, a write whose outcome
the work does not need) travel with the next statement whose answer the work waits for, or
with the COMMIT; a login's transaction is two round trips instead of seven. BEGIN and COMMIT
are sent as statements: psycopg's own `transaction()` nests pipelines in pipeline mode, each
ending in a Sync, a round trip more. A transaction whose statements each wait for their answer
(the token endpoint's) saves nothing that way and runs without it (`pipelined=False`). A
connection taken from the pool is not pinged (a round trip) but looked at (`_still_open`): a
server that restarted, or ended the connection, leaves a message or the end of the stream on
its socket.

A driver error comes out as SQLAlchemy's (`DBAPIError.instance`, parameters hidden), so the
callers' and the app's handling (`web.database_outage`: a 503 while the database is down)
sees what it sees from the async engine.
"""

from __future__ import annotations

import asyncio
import os
import select
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, nullcontext, suppress
from typing import Any, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, StatementError
from sqlalchemy.util import await_only, greenlet_spawn

from identity.sqlite_inline import COMPILED_KEPT, AnyChange, AnyStatement, Compiled

T = TypeVar("T")
POOL = min(32, (os.cpu_count() or 1) + 4)
"""PostgreSQL connections this process holds for these statements, besides the async engine's:
at most this many of them run at once, the others wait their turn."""

GENERIC_PLANS = "-c plan_cache_mode=force_generic_plan"
"""The hot statements are joins of up to nine tables found by key; PostgreSQL spends about
40 ms planning one (the executor 0.5 ms). Each is prepared on its first use on a connection
(`prepare_threshold=0`) and planned once there, generically, instead of for each of its first
ten executions (psycopg's five unprepared, then PostgreSQL's five custom plans)."""


class Statements:
    """`one` (a read of its own) and `transaction` (a write transaction of `Tx` statements),
    compiled with `dialect` (the async engine's) and sent to the database at `url`."""

    def __init__(self, dialect: Dialect, url: URL) -> None:
        self.dialect = dialect
        self._compiled: dict[AnyStatement, Compiled] = {}
        self._pool = _Pool(dialect, url)

    async def one(self, statement: AnyStatement, parameters: dict[str, Any]) -> Any:
        compiled = self.compiled(statement)
        async with self._connection() as connection:
            cursor = await _execute(connection, compiled, parameters)
            return _one(compiled, await cursor.fetchall())

    async def transaction(self, work: Callable[[_Tx], T], *, pipelined: bool = True) -> T:
        """`work` in one transaction: committed when it returns, rolled back if it raises;
        in pipeline mode unless not `pipelined`."""
        async with self._connection() as connection:
            tx = _Tx(self, connection)
            try:
                async with connection.pipeline() if pipelined else nullcontext() as tx.pipeline:
                    await connection.execute(b"BEGIN")
                    done = await greenlet_spawn(work, tx)
                    await connection.execute(b"COMMIT")
            except Exception:
                await _roll_back(connection)
                raise
            return done

    def compiled(self, statement: AnyStatement) -> Compiled:
        found = self._compiled.get(statement)
        if found is None:
            if len(self._compiled) >= COMPILED_KEPT:
                self._compiled.clear()
            found = self._compiled[statement] = Compiled(statement, self.dialect)
        return found

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            async with self._pool.connection() as connection:
                yield connection
        except psycopg.Error as exc:
            raise self._error(exc) from exc

    def _error(self, exc: psycopg.Error) -> StatementError:
        """SQLAlchemy's exception for the driver's (`OperationalError` for a connection
        refused or lost, ...), without the statement's parameters."""
        lost = isinstance(exc, psycopg.OperationalError)
        return DBAPIError.instance(
            None, None, exc, psycopg.Error, connection_invalidated=lost, dialect=self.dialect
        )

    async def close(self) -> None:
        await self._pool.close()


class _Tx:
    """`identity.db.Tx` on one connection, for work running in a greenlet."""

    def __init__(self, statements: Statements, connection: psycopg.AsyncConnection[Any]) -> None:
        self.statements = statements
        self.connection = connection
        self.dialect = statements.dialect
        self.pipeline: psycopg.AsyncPipeline | None = None

    def one(self, statement: AnyStatement, parameters: dict[str, Any]) -> Any:
        compiled = self.statements.compiled(statement)
        cursor = await_only(_execute(self.connection, compiled, parameters))
        return _one(compiled, await_only(cursor.fetchall()))

    def run(self, statement: AnyChange, parameters: dict[str, Any]) -> int:
        cursor = self._sent(statement, parameters)
        if self.pipeline is not None:
            await_only(self.pipeline.sync())  # the answer, and so the count, of what was sent
        return cursor.rowcount

    def send(self, statement: AnyStatement, parameters: dict[str, Any]) -> None:
        self._sent(statement, parameters)

    def _sent(
        self, statement: AnyStatement, parameters: dict[str, Any]
    ) -> psycopg.AsyncCursor[Any]:
        return await_only(
            _execute(self.connection, self.statements.compiled(statement), parameters)
        )


async def _execute(
    connection: psycopg.AsyncConnection[Any], compiled: Compiled, parameters: dict[str, Any]
) -> psycopg.AsyncCursor[Any]:
    return await connection.execute(compiled.sql, compiled.values(parameters))


def _one(compiled: Compiled, rows: list[Any]) -> Any:
    if len(rows) > 1:
        raise MultipleResultsFound("more than one row where one or none was expected")
    return compiled.row(rows[0]) if rows else None


async def _roll_back(connection: psycopg.AsyncConnection[Any]) -> None:
    """End a transaction that failed, once its pipeline (if any) has ended. A connection this
    cannot roll back (or whose work was cancelled) is not kept by the pool, which closes it:
    PostgreSQL then rolls back."""
    if connection.closed or connection.info.transaction_status == TransactionStatus.IDLE:
        return
    with suppress(psycopg.Error):
        await connection.execute(b"ROLLBACK")


class _Pool:
    """Up to `POOL` connections, opened when needed (autocommit: a read is one statement, a
    write transaction says BEGIN itself), kept while idle and open, at most `POOL` in use at
    once. A connection handed back in the middle of something (a request cancelled during a
    statement, a failed rollback) or broken is closed instead of kept."""

    def __init__(self, dialect: Dialect, url: URL) -> None:
        args, params = dialect.create_connect_args(url)
        self._args = args
        self._params = {
            **params,
            "autocommit": True,
            "prepare_threshold": 0,
            "options": GENERIC_PLANS,
        }
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        # one gate per event loop: asyncio's primitives belong to the loop they first wait in
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Semaphore(POOL)
        async with gate:
            connection = await self._take()
            try:
                yield connection
            finally:
                await self._give_back(connection)

    async def _take(self) -> psycopg.AsyncConnection[Any]:
        while self._idle:
            connection = self._idle.pop()
            if _still_open(connection):
                return connection
            await connection.close()
        return await psycopg.AsyncConnection.connect(*self._args, **self._params)

    async def _give_back(self, connection: psycopg.AsyncConnection[Any]) -> None:
        idle = connection.info.transaction_status == TransactionStatus.IDLE
        if not connection.closed and idle and len(self._idle) < POOL:
            self._idle.append(connection)
        else:
            await connection.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()


def _still_open(connection: psycopg.AsyncConnection[Any]) -> bool:
    """A connection to hand out must be idle and open: any byte waiting on its socket
    (a server's termination notice, or the end of the stream) means the server is done with
    it. Costs one `select` instead of a round trip."""
    if connection.closed or connection.info.transaction_status != TransactionStatus.IDLE:
        return False
    readable, _, _ = select.select([connection.fileno()], [], [], 0)
    return not readable
