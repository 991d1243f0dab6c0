"""PostgreSQL's counterpart of `identity.sqlite_inline.Statements`: the hot paths' statements
sent on psycopg connections directly, a write transaction's in psycopg's pipeline mode.

Through SQLAlchemy's async engine a one-row read cost about 0.8 ms of CPU (the pool's
checkout in a task, the greenlet, psycopg's async adapter, the result machinery), several times
the work of the statement (docs/architecture.md, Performance). Here each Core statement is
compiled once for PostgreSQL (`sqlite_inline.Compiled`: the types' own converters, rows as
SQLAlchemy's), and sent on a synchronous psycopg connection from a synchronous SQLAlchemy pool
(the same connection setup, a disconnected connection dropped), in a worker thread: PostgreSQL
answers over the network, so the event loop never waits for it.

Round trips, more than statements, are what a busy machine makes slow: each waits for the
server's process and then for this one's thread to be scheduled again, on two busy cores about
a millisecond, more than the statement itself. So a write transaction runs in pipeline mode:
BEGIN and every statement sent with `send` (a lock, a write whose outcome the work does not
need) travel with the next statement whose answer the work waits for, or with the COMMIT; a
login's transaction is two round trips instead of seven. Pipeline mode costs psycopg more of
its own work per statement, though (about 0.1 ms of CPU): a transaction whose statements each
wait for their answer (the token endpoint's) saves one round trip or none, and runs without it
(`pipelined=False`). And a connection taken from the pool is not pinged (a round trip) but
looked at (`_still_open`): a server that restarted, or ended the connection, leaves a message
or the end of the stream on its socket.

A driver error comes out as SQLAlchemy's (`DBAPIError.instance`, parameters hidden), so the
callers' and the app's handling (`web.database_outage`: a 503 while the database is down)
sees what it sees from the async engine.
"""

from __future__ import annotations

import os
import select
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, DisconnectionError, MultipleResultsFound, StatementError
from sqlalchemy.pool import PoolProxiedConnection

from identity.sqlite_inline import COMPILED_KEPT, AnyChange, AnyStatement, Compiled

T = TypeVar("T")
POOL = min(32, (os.cpu_count() or 1) + 4)
"""PostgreSQL connections this process holds for these statements, besides the async engine's:
one for each of the worker threads that use them (asyncio's default executor: the cores plus
four, at most 32), so that none is opened and closed under load."""

GENERIC_PLANS = "-c plan_cache_mode=force_generic_plan"
"""The hot statements are joins of up to nine tables found by key; PostgreSQL spends about
40 ms planning one (the executor 0.5 ms). Each is prepared on its first use on a connection
(`prepare_threshold=0`) and planned once there, generically, instead of for each of its first
ten executions (psycopg's five unprepared, then PostgreSQL's five custom plans)."""


class Statements:
    """`one` (a read of its own) and `transaction` (a write transaction of `Tx` statements),
    each called in a worker thread."""

    def __init__(self, url: str) -> None:
        # autocommit: a read is one statement; a write transaction says BEGIN itself.
        self.engine = create_engine(
            url,
            pool_size=POOL,
            max_overflow=0,
            hide_parameters=True,
            connect_args={"autocommit": True, "prepare_threshold": 0, "options": GENERIC_PLANS},
        )
        event.listen(self.engine, "checkout", _still_open)
        self.dialect: Dialect = self.engine.dialect
        self._compiled: dict[AnyStatement, Compiled] = {}

    def one(self, statement: AnyStatement, parameters: dict[str, Any]) -> Any:
        with self._connection() as connection:
            return _Tx(self, connection).one(statement, parameters)

    def transaction(self, work: Callable[[_Tx], T], *, pipelined: bool = True) -> T:
        """`work` in one transaction: committed when it returns, rolled back if it raises;
        in pipeline mode unless not `pipelined`."""
        with self._connection() as connection:
            tx = _Tx(self, connection)
            pipeline = tx.driver.pipeline() if pipelined else nullcontext()
            with pipeline as tx.pipeline, tx.driver.transaction():
                return work(tx)

    def compiled(self, statement: AnyStatement) -> Compiled:
        found = self._compiled.get(statement)
        if found is None:
            if len(self._compiled) >= COMPILED_KEPT:
                self._compiled.clear()
            found = self._compiled[statement] = Compiled(statement, self.dialect)
        return found

    @contextmanager
    def _connection(self) -> Iterator[PoolProxiedConnection]:
        try:
            connection = self.engine.raw_connection()
        except psycopg.Error as exc:  # the pool hands the driver's error on as it is
            raise self._error(exc) from exc
        try:
            yield connection
        except psycopg.Error as exc:
            lost = self.dialect.is_disconnect(exc, connection, None)  # type: ignore[arg-type]
            if lost:
                connection.invalidate(exc)
            raise self._error(exc, lost) from exc
        finally:
            connection.close()

    def _error(self, exc: psycopg.Error, lost: bool = False) -> StatementError:
        """SQLAlchemy's exception for the driver's (`OperationalError` for a connection
        refused or lost, ...), without the statement's parameters."""
        return DBAPIError.instance(
            None, None, exc, psycopg.Error, connection_invalidated=lost, dialect=self.dialect
        )

    def close(self) -> None:
        self.engine.dispose()


class _Tx:
    """`identity.db.Tx` on one psycopg connection."""

    def __init__(self, statements: Statements, connection: PoolProxiedConnection) -> None:
        self.statements = statements
        driver = connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        self.driver = driver
        self.dialect = statements.dialect
        self.pipeline: psycopg.Pipeline | None = None  # in a transaction

    def one(self, statement: AnyStatement, parameters: dict[str, Any]) -> Any:
        compiled = self.statements.compiled(statement)
        rows = self._execute(compiled, parameters).fetchall()
        if len(rows) > 1:
            raise MultipleResultsFound("more than one row where one or none was expected")
        return compiled.row(rows[0]) if rows else None

    def run(self, statement: AnyChange, parameters: dict[str, Any]) -> int:
        cursor = self._execute(self.statements.compiled(statement), parameters)
        if self.pipeline is not None:
            self.pipeline.sync()  # the answer, and so the count, of what was sent
        return cursor.rowcount

    def send(self, statement: AnyStatement, parameters: dict[str, Any]) -> None:
        self._execute(self.statements.compiled(statement), parameters)

    def _execute(self, compiled: Compiled, parameters: dict[str, Any]) -> psycopg.Cursor[Any]:
        return self.driver.execute(compiled.sql, compiled.values(parameters))


def _still_open(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection must be idle and open: any byte waiting on its socket (a server's
    termination notice, or the end of the stream) means the server is done with it, and the
    pool opens another. Costs one `poll` instead of a round trip."""
    connection: psycopg.Connection[Any] = dbapi_connection
    if connection.closed or connection.info.transaction_status != TransactionStatus.IDLE:
        raise DisconnectionError("connection not idle")
    readable, _, _ = select.select([connection.fileno()], [], [], 0)
    if readable:
        raise DisconnectionError("the server ended the connection")
