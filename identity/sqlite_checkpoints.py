"""SQLite's write-ahead log copied back into the database file beside the writes, not by them.

In WAL mode SQLite copies the log back into the database file (a checkpoint) in the commit
that makes the log longer than 1,000 pages, so one request in a few pays for the others'
pages. At a million members an authSync of 500 new users changes some 500 scattered pages of
the member-name index of a large tenant, so nearly every such commit ran a checkpoint: about
6 of the 12 ms the sync took more than on an empty database (docs/architecture.md,
Performance). So the writers' connections do not checkpoint (`WRITER_PRAGMAS`), and after a
write, when the log has changed and no checkpoint has started for a second, one runs in a
worker thread on a connection of its own (`PASSIVE`: it waits for no reader or writer, and
copies what no reader still needs). A process that stops writes nothing more to the log; the
last connection to close checkpoints it, as SQLite always does, and an unfinished log is
replayed at the next open.

The writers' connections also keep a larger page cache (32 MiB instead of SQLite's 2 MiB,
allocated only as pages are read): a sync of a large tenant reads more pages of its indexes
than 2 MiB holds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time

WRITER_PRAGMAS = ("PRAGMA wal_autocheckpoint=0", "PRAGMA cache_size=-32768")
"""Run on every connection that writes (`identity.db.make_engine`'s, the hot paths' writer)."""
EVERY_SECONDS = 1.0
"""At most one checkpoint started per this many seconds, per process."""
log = logging.getLogger("identity.db")


class Checkpoints:
    """The checkpoints of one database file, started by `after_write`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._log = f"{path}-wal"
        self._seen: int | None = None  # the log's modification time at the last checkpoint
        self._started = 0.0
        self._running = False
        self._connection: sqlite3.Connection | None = None

    def after_write(self) -> None:
        """Called on the event loop's thread once a write transaction has ended: start a
        checkpoint in a worker thread if the log changed since the last one and none has
        started for `EVERY_SECONDS`."""
        now = time.monotonic()
        if self._running or now - self._started < EVERY_SECONDS:
            return
        try:
            changed = os.stat(self._log).st_mtime_ns
        except OSError:  # no log (yet): nothing to copy
            return
        if changed == self._seen:
            return
        self._running, self._started, self._seen = True, now, changed
        asyncio.get_running_loop().run_in_executor(None, self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            if self._connection is None:
                self._connection = sqlite3.connect(
                    self.path, timeout=5, isolation_level=None, check_same_thread=False, uri=True
                )
            self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # the next write tries again
            log.warning("SQLite checkpoint failed: %s", exc)
            self._seen = None
        finally:
            self._running = False

    def close(self) -> None:
        if self._connection is not None and not self._running:
            self._connection.close()
            self._connection = None
