"""The hot reads' rows kept in the process on PostgreSQL, forgotten whenever the database says
that something they read changed.

An introspection or a userinfo reads the database twice (the client, the access token's
liveness), each read about 0.13 ms of CPU and a worker thread's hop (docs/architecture.md,
Performance); the rows rarely change between two calls of one app. But revocation must stay
immediate on every replica: a token whose grant, session, member, client or key ended is
inactive at the next request, whichever process or command ended it.

So the database itself tells: migrations 0017 and 0018 put a statement-level trigger on every
table these statements read, which sends a notification on `identity_changes` whose payload is
the table's name (PostgreSQL folds equal ones into one per transaction) after any INSERT,
DELETE, TRUNCATE or UPDATE of a column they read (but no INSERT into the tables every sign-in
writes, since migration 0020: `INSERTS_UNHEARD`). Each process keeps one connection of its own
that LISTENs on that channel, read by a thread of its own as notifications arrive. Before any
row is served from here, or stored here, whatever has arrived on that connection's socket is
read without waiting (`consume_input`: one `recv`, no round trip); a notification clears the
rows of every statement that reads its table (all rows, for a payload that names no table we
know, as 0017's constant one). So the sign-ins, which write sessions all the time, clear
nothing. While the listening connection is not up (not yet opened, lost, being
reopened in a thread with a growing pause), nothing is served from here or stored: every read
goes to the database as before. A row read while a notification about one of its statement's
tables came in is not stored (the ticket).

The window that remains: a commit's notification in flight. PostgreSQL signals the listening
backends during the commit, before the committing client hears that it committed; the
listening backend then writes the notification to this process's socket. A request that reaches
this process after the change was committed and acknowledged can still come before that write,
which is a matter of the listening backend being scheduled (tens of microseconds on an idle
server, longer on a saturated one). A connection that dies without a word (a host gone) is
noticed by TCP keepalives within about 11 seconds (then the rows are
forgotten and reads go to the database).

Time-dependent checks are not the database's to answer here: the statements read timestamps,
and the callers compare them with the clock at each use (`grants._in_force`).
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import weakref
from collections.abc import Hashable
from typing import Any, TypeVar

import psycopg
from psycopg.pq import ConnStatus
from sqlalchemy import Column, Table
from sqlalchemy.engine import make_url
from sqlalchemy.sql import visitors

from identity.sqlite_inline import AnySelect

CHANNEL = "identity_changes"
ROWS_KEPT = 20_000
"""At most this many rows; the cache starts again empty when full (an attacker asking about
random tokens only makes it start again)."""
FIRST_PAUSE, LAST_PAUSE = 0.1, 30.0
"""The pause before reopening a lost listening connection, doubling from the first to the
last."""
WATCH_SECONDS = 5.0
"""How long the listening connection's reader waits for its socket before looking again."""

INSERTS_UNHEARD = frozenset({"sessions", "session_apps", "oidc_grants"})
"""The tables whose INSERTs notify nobody (migration 0020): every sign-in writes them. The kept
statements find their rows there by a key the row fixes (a grant by its id, its session by
`sid`, the session's app by `sid` and `app_id`), so a new row cannot change a row found; it can
only make one appear where none was found. So a statement that reads one of these keeps no
"not found" (`Cache.keep`): an ended token is read from the database each time."""

S = TypeVar("S", bound=AnySelect)
Parameters = tuple[tuple[str, Hashable], ...]
Key = tuple[AnySelect, Parameters]
MISSING: Any = object()
"""`Cache.look`'s answer when it holds no row for the key (a None row is a row: not found)."""

_CACHEABLE: weakref.WeakKeyDictionary[AnySelect, frozenset[str]] = weakref.WeakKeyDictionary()
"""Each marked statement and the tables it reads."""
log = logging.getLogger("identity.db")


def cacheable(statement: S) -> S:
    """Mark a hot read as one whose rows may be kept (`Database.read_one` on PostgreSQL).
    Every table and column it reads must be covered by the change notices' triggers (a test
    walks every marked statement); it must not depend on the time or any state outside the
    tables."""
    _CACHEABLE[statement] = frozenset(table for table, _ in reads(statement))
    return statement


def reads(statement: AnySelect) -> set[tuple[str, str]]:
    """(table, column) of every column the statement names, in its subqueries as well."""
    found = set()
    for element in visitors.iterate(statement, {"column_collections": False}):
        if isinstance(element, Column) and isinstance(element.table, Table):
            found.add((element.table.name, element.name))
    return found


def is_cacheable(statement: AnySelect) -> bool:
    return statement in _CACHEABLE


def marked() -> list[AnySelect]:
    """The statements marked so far (for the test that checks the triggers cover them)."""
    return list(_CACHEABLE)


def key(statement: AnySelect, parameters: dict[str, Any]) -> Key:
    return statement, tuple(parameters.items())


class Cache:
    """Rows by (statement, parameters), valid while this process's listening connection is up
    and has brought no notification since they were read. Used from the event loop and from
    worker threads: one lock, never held across I/O that waits."""

    def __init__(self, url: str, rows_kept: int = ROWS_KEPT) -> None:
        self._conninfo = make_url(url).set(drivername="postgresql").render_as_string(False)
        self._rows_kept = rows_kept
        self._rows: dict[AnySelect, dict[Parameters, Any]] = {}
        self._count = 0
        self._lock = threading.Lock()
        self._listener: psycopg.Connection[Any] | None = None
        self._heard_otherwise = False  # a notice on the listening connection: the server's FATAL
        self._generation = 0  # every row forgotten
        self._changes: dict[str, int] = {}  # notifications per table
        self._opening = False
        self._closed = False
        self._pause = FIRST_PAUSE
        self._next_try = 0.0

    def look(self, key: Key) -> tuple[Any, int | None]:
        """(the kept row, or MISSING, and the ticket for `keep`); the ticket is None while no
        listening connection is up (the row read then is not kept)."""
        statement, parameters = key
        with self._lock:
            if not self._drained():
                return MISSING, None
            row = self._rows.get(statement, {}).get(parameters, MISSING)
            return row, self._ticket(statement)

    def keep(self, key: Key, row: Any, ticket: int | None) -> None:
        """Keep `row`, read after `look` gave `ticket`, unless a notification about one of the
        tables it reads (or a lost connection) came in since, or it is a "not found" that an
        unheard INSERT could change (`INSERTS_UNHEARD`)."""
        statement, parameters = key
        if ticket is None or (row is None and _CACHEABLE[statement] & INSERTS_UNHEARD):
            return
        with self._lock:
            if not self._drained() or self._ticket(statement) != ticket:
                return
            if self._count >= self._rows_kept:
                self._forget()
            kept = self._rows.setdefault(statement, {})
            self._count += parameters not in kept
            kept[parameters] = row

    def _ticket(self, statement: AnySelect) -> int:
        """Grows with every notification about a table `statement` reads (all included)."""
        changes = self._changes
        return self._generation + sum(changes.get(table, 0) for table in _CACHEABLE[statement])

    @property
    def listening(self) -> bool:
        """Whether rows are being kept: the listening connection is up (for tests and logs)."""
        with self._lock:
            return self._drained()

    @property
    def listener_pid(self) -> int | None:
        """The listening connection's server process (for tests)."""
        listener = self._listener
        return None if listener is None else listener.info.backend_pid

    def _drained(self) -> bool:
        """Read what has arrived on the listening connection, without waiting; clear the rows
        on any notification. False (and the rows cleared) while it is not up."""
        listener = self._listener
        if listener is None:
            self._open_later()
            return False
        pgconn = listener.pgconn
        tables: set[str] = set()
        try:
            pgconn.consume_input()
            while (notice := pgconn.notifies()) is not None:
                tables.add(notice.extra.decode(errors="replace"))
        except psycopg.Error:
            self._drop()
            return False
        if self._heard_otherwise or pgconn.status != ConnStatus.OK:
            self._drop()
            return False
        for table in tables:
            self._forget(table)
        return True

    def _forget(self, table: str | None = None) -> None:
        """The rows of every statement that reads `table`; every row when None or a table no
        kept statement reads (a payload we do not know, such as migration 0017's empty one)."""
        statements = [s for s, read in _CACHEABLE.items() if table in read]
        if table is None or not statements:
            self._rows.clear()
            self._count = 0
            self._generation += 1
            return
        self._changes[table] = self._changes.get(table, 0) + 1
        for statement in statements:
            self._count -= len(self._rows.pop(statement, {}))

    def _drop(self) -> None:
        listener, self._listener = self._listener, None
        self._forget()
        self._next_try = time.monotonic()  # at once; the pause grows if opening fails
        if listener is not None:
            log.warning("lost the connection listening for changes; reads are not cached")
            listener.close()

    def _open_later(self) -> None:
        if self._opening or self._closed or time.monotonic() < self._next_try:
            return
        self._opening = True
        threading.Thread(target=self._open, name="identity-listener", daemon=True).start()

    def _open(self) -> None:
        """In a thread of its own, which then reads the connection (`_watch`): connecting waits
        for the network."""
        try:
            listener = psycopg.connect(
                self._conninfo,
                autocommit=True,
                application_name=f"identity-listener-{os.getpid()}",
                connect_timeout=5,
                keepalives=1,  # a server gone without a word: noticed in 5 + 3 × 2 seconds
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=3,
            )
            listener.add_notice_handler(self._noticed)
            listener.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            with self._lock:
                self._opening = False
                self._next_try = time.monotonic() + self._pause
                self._pause = min(LAST_PAUSE, self._pause * 2)
            log.warning("cannot listen for changes (%s); reads are not cached", type(exc).__name__)
            return
        with self._lock:
            self._opening = False
            if self._closed:
                listener.close()
                return
            self._listener, self._heard_otherwise = listener, False
            self._pause = FIRST_PAUSE
            self._forget()  # whatever changed before LISTEN was never heard
        self._watch(listener)

    def _watch(self, listener: psycopg.Connection[Any]) -> None:
        """Read the listening connection whenever something arrives, also while no request
        comes: unread notifications would fill its socket, and a listening backend that cannot
        send holds back PostgreSQL's notification queue for every session. Ends when the
        connection is dropped or replaced."""
        while True:
            try:
                select.select([listener.fileno()], [], [], WATCH_SECONDS)
            except (OSError, ValueError, psycopg.Error):  # closed under us
                return
            with self._lock:
                if self._listener is not listener:
                    return
                self._drained()

    def _noticed(self, _diagnostic: psycopg.errors.Diagnostic) -> None:
        """The listening connection runs nothing; what the server says on it unasked is its
        end (`terminating connection …`), sometimes read a call before the end of the stream."""
        self._heard_otherwise = True

    def close(self) -> None:
        with self._lock:
            self._closed = True
            listener, self._listener = self._listener, None
            self._forget()
        if listener is not None:
            listener.close()
