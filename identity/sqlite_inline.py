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
from collections.abc import Callable, Generator
from typing import Any

import aiosqlite


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
