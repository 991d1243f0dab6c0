"""SQLite's write-ahead log copied back into the database file beside the writes, not by them.

In WAL mode SQLite copies the log back into the database file (a checkpoint) in the commit
that makes the log longer than 1,000 pages, so one request in a few pays for the others'
pages. At a million members an authSync of 500 new users changes some 500 scattered pages of
the member-name index of a large tenant, so nearly every such commit ran a checkpoint
(docs/architecture.md, Performance). So the writers' connections leave that to this module
(`WRITER_PRAGMAS`: only a log ten times longer makes a commit checkpoint, should this module
fall behind), and after a write, when the log has changed and no checkpoint has started for
`EVERY_SECONDS`, one runs as a task of the event loop on one of the engine's own connections,
off this thread (aiosqlite's). `PASSIVE`: it waits for no reader or writer and copies what
no reader still needs. `Database.dispose` waits for a checkpoint under way before it closes
the engine, so no connection outlives its `Database`, and nothing here opens the database
file any other way than through SQLite (closing another descriptor of the file would drop
this process's locks on it).

The writers' connections also keep a larger page cache (32 MiB instead of SQLite's 2 MiB,
filled only as pages are read): a sync into a large tenant reads more pages of its indexes
than 2 MiB holds. Writes of one process are taken one at a time, so in practice one engine
connection and the hot paths' writer carry such a cache.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

WRITER_PRAGMAS = ("PRAGMA wal_autocheckpoint=10000", "PRAGMA cache_size=-32768")
"""Run on every connection that writes (`identity.db.make_engine`'s, the hot paths' writer)."""
EVERY_SECONDS = 1.0
"""At most one checkpoint started per this many seconds, per process."""
log = logging.getLogger("identity.db")


class Checkpoints:
    """The checkpoints of one database file (`path`, written through `engine`), started by
    `after_write`."""

    def __init__(self, engine: AsyncEngine, path: str, *, single_read: str) -> None:
        self.engine, self.single_read = engine, single_read
        self._log = f"{path}-wal"
        self._seen: int | None = None  # the log's modification time at the last checkpoint
        self._started = 0.0
        self._running: asyncio.Task[None] | None = None

    def after_write(self) -> None:
        """Called on the event loop once a write transaction has ended: start a checkpoint if
        the log changed since the last one and none has started for `EVERY_SECONDS`."""
        now = time.monotonic()
        if (self._running and not self._running.done()) or now - self._started < EVERY_SECONDS:
            return
        try:
            changed = os.stat(self._log).st_mtime_ns
        except OSError:  # no log (yet): nothing to copy
            return
        if changed == self._seen:
            return
        self._started, self._seen = now, changed
        self._running = asyncio.get_running_loop().create_task(self._checkpoint())

    async def _checkpoint(self) -> None:
        try:
            async with self.engine.connect() as connection:
                alone = await connection.execution_options(**{self.single_read: True})
                await alone.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except SQLAlchemyError as exc:  # the next write tries again
            log.warning("SQLite checkpoint failed: %s", exc)
            self._seen = None

    async def close(self) -> None:
        """Wait for a checkpoint under way (it takes milliseconds: it waits for nobody)."""
        if self._running is not None:
            await asyncio.gather(self._running, return_exceptions=True)
            self._running = None
