"""SQLite reads on the event loop's own thread.

aiosqlite gives each connection a thread and sends every call there and back: a queue, a
wake-up of the event loop, two switches of the GIL, for work that takes SQLite a few
microseconds. On the provider's token calls that hop cost more than the statements (the
profile in docs/architecture.md). A read in WAL mode never waits for a writer, so it can run
where it is called: `connect` opens an aiosqlite connection whose calls run at once, on the
caller's thread, and `identity.db` uses it for reads only (`PRAGMA query_only`). Writes keep
aiosqlite's thread: `BEGIN IMMEDIATE` may wait up to the busy timeout for another process's
writer, and that wait must not stop the event loop.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Generator
from functools import partial
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy import Delete, Insert, Select, Update, bindparam, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import MultipleResultsFound

from identity.sqlite_checkpoints import WRITER_PRAGMAS


class _RunNow:
    """Stands in for the queue to aiosqlite's thread: runs each call as it is put. (SQLAlchemy's
    adapter puts some calls, such as setting the isolation level, on that queue itself.)"""

    def put_nowait(self, item: tuple[Any, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller, as aiosqlite does
            if future is not None:
                future.set_exception(exc)
        else:
            if future is not None:
                future.set_result(result)


class InlineConnection(aiosqlite.Connection):
    """aiosqlite's connection without its thread: every call runs when it is awaited."""

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._tx = _RunNow()  # type: ignore[assignment]

    def __await__(self) -> Generator[Any, None, aiosqlite.Connection]:
        return self._connect().__await__()  # no thread to start

    async def _connect(self) -> InlineConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    def stop(self) -> None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def connect(path: str, timeout: float) -> Callable[[], Any]:
    """An `async_creator` for SQLAlchemy's aiosqlite dialect: inline connections to `path`."""

    async def creator() -> aiosqlite.Connection:
        return await InlineConnection(
            lambda: sqlite3.connect(
                path, timeout=timeout, isolation_level=None, check_same_thread=False, uri=True
            )
        )

    return creator


AnySelect = Select[*tuple[Any, ...]]
AnyChange = Insert | Update | Delete
AnyStatement = AnySelect | AnyChange
COMPILED_KEPT = 64
"""Statements kept compiled: the hot paths' are module-level constants, a handful."""
_row_type: Callable[[list[str]], Any] = partial(namedtuple, "Row", rename=True)
"""A row class with the statement's column names as attributes (a column without a name, or
a repeated one, is `_<position>`), and `_asdict()`."""
T = TypeVar("T")


class Statements:
    """The hot paths' statements on one `sqlite3` connection, without SQLAlchemy's execution
    layer: each Core statement is compiled once; the values it binds and the columns it returns
    go through their types' own converters, so a row holds what SQLAlchemy would have
    returned. Through SQLAlchemy (its async engine, or even its synchronous one) the statement
    machinery cost several times what SQLite spends on the statement.

    A reader (`Database.read_one`) is used on the event loop's thread, by every caller: a
    statement runs to its last row before `one` returns (so no read transaction stays open,
    and the next statement sees the latest commits), and nothing here awaits. A `writer`
    (`Database.run_write`) runs one transaction at a time, in a worker thread, since
    `BEGIN IMMEDIATE` may wait for another process's writer. The connection opens at the first
    statement, so a `Database` made before `identity serve` forks its workers holds none yet."""

    def __init__(self, path: str, dialect: Dialect, *, writer: bool = False) -> None:
        self.path, self.dialect, self.writer = path, dialect, writer
        self._connection: sqlite3.Connection | None = None  # opened at the first statement
        self._compiled: dict[AnyStatement, Compiled] = {}

    @property
    def connection(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False, uri=True
            )
            if self.writer:  # as `identity.db.make_engine`'s connections
                self._connection.execute("PRAGMA foreign_keys=ON")
                self._connection.execute("PRAGMA synchronous=NORMAL")
                for pragma in WRITER_PRAGMAS:
                    self._connection.execute(pragma)
            else:
                self._connection.execute("PRAGMA query_only=ON")
        return self._connection

    def one(self, statement: AnyStatement, parameters: dict[str, Any]) -> Any:
        """The statement's one row (attributes and `_asdict()` as SQLAlchemy's `Row`), or None:
        a SELECT's, or a change's with RETURNING; more than one row is an error, as
        `Result.one_or_none` says."""
        compiled = self._compiled.get(statement) or self._compile(statement)
        rows = self.connection.execute(compiled.sql, compiled.values(parameters)).fetchall()
        if len(rows) > 1:
            raise MultipleResultsFound("more than one row where one or none was expected")
        return compiled.row(rows[0]) if rows else None

    def run(self, statement: AnyChange, parameters: dict[str, Any]) -> int:
        """An INSERT, UPDATE or DELETE in the transaction under way; the rows it touched."""
        compiled = self._compiled.get(statement) or self._compile(statement)
        return self.connection.execute(compiled.sql, compiled.values(parameters)).rowcount

    def send(self, statement: AnyStatement, parameters: dict[str, Any]) -> None:
        """A statement in the transaction under way whose result is not needed."""
        compiled = self._compiled.get(statement) or self._compile(statement)
        self.connection.execute(compiled.sql, compiled.values(parameters)).fetchall()

    def transaction(self, work: Callable[[Statements], T]) -> T:
        """`work` in one write transaction: committed when it returns, rolled back if it
        raises."""
        connection = self.connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = work(self)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return result

    def _compile(self, statement: AnyStatement) -> Compiled:
        compiled = Compiled(statement, self.dialect)
        if len(self._compiled) >= COMPILED_KEPT:
            self._compiled.clear()  # statements built per call would otherwise pile up here
        self._compiled[statement] = compiled
        return compiled

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def insert_naming(table: Any, *columns: str) -> Insert:
    """An INSERT into `table` of `columns`, each bound to the parameter of its name: what a
    statement compiled once needs (without its columns named, it would ask for every column
    at every execution)."""
    return insert(table).values({column: bindparam(column) for column in columns})


class Compiled:
    """A statement compiled for SQLite once: its SQL, its parameters in order with their
    converters, and a converter per column of its rows."""

    def __init__(self, statement: AnyStatement, dialect: Dialect) -> None:
        if isinstance(statement, Insert) and not statement._values:
            raise TypeError("a hot path's INSERT names its columns (insert_naming)")
        compiled = statement.compile(dialect=dialect)
        if compiled.post_compile_params:
            raise TypeError("a hot path's statement takes no IN list (expanding parameter)")
        computed = [*(compiled.insert_prefetch or ()), *(compiled.update_prefetch or ())]
        if computed:  # SQLAlchemy would work these out in Python at each execution
            names = ", ".join(column.name for column in computed)
            raise TypeError(f"a hot path's statement gives every value itself: {names}")
        self._compiled = compiled
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        if self.positional:  # SQLite's `?`: each parameter's name in order
            binds = [(compiled.binds[name], name) for name in compiled.positiontup or ()]
        else:  # psycopg's `%(name)s`
            binds = list(compiled.bind_names.items())
        self.names = [name for _, name in binds]
        self.into_driver = [
            bind.type.dialect_impl(dialect).bind_processor(dialect) for bind, _ in binds
        ]
        # a change's columns are those of its RETURNING, if any
        selected = statement.selected_columns if isinstance(statement, Select) else None
        columns = list(statement.exported_columns if selected is None else selected)
        self.from_driver = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]
        self.shape = _row_type([str(column.key) for column in columns])

    def values(self, parameters: dict[str, Any]) -> Any:
        """The statement's parameters as the driver takes them: a tuple in order (SQLite's
        `?`), or a dict by name (psycopg's `%(name)s`)."""
        named = self._compiled.construct_params(parameters)
        converted = [
            convert(named[name]) if convert else named[name]
            for name, convert in zip(self.names, self.into_driver, strict=True)
        ]
        return (
            tuple(converted) if self.positional else dict(zip(self.names, converted, strict=True))
        )

    def row(self, raw: tuple[Any, ...]) -> Any:
        pairs = zip(raw, self.from_driver, strict=True)
        return self.shape._make([convert(v) if convert else v for v, convert in pairs])
