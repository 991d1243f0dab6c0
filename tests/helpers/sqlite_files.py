"""The bytes a live SQLite database has on disk, read without harming it.

A test that looks for a secret in the stored file must not open the file itself: on POSIX,
closing any descriptor of a file drops every lock this process holds on it, and SQLite's
connections here keep theirs. Another process (a stack's `identity serve`) that then closes
its last connection finds the file unlocked, takes it as the last user, copies the
write-ahead log back and deletes it, while this process's connections go on appending to the
deleted log: their later commits are lost, or the file reads as malformed. (SQLite's own
documentation, "How To Corrupt An SQLite Database File", section 2.2.) So the file is read by
a process of its own, whose locks are its own.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url


def stored_bytes(database_url: str, *, log: bool = True) -> bytes:
    """The database file of `database_url` and (with `log`) its write-ahead log, as stored,
    read by `cat` in a process of its own."""
    path = Path(str(make_url(database_url).database))
    parts = [path, Path(f"{path}-wal")] if log else [path]
    present = [str(part) for part in parts if part.exists()]
    if not present:
        return b""
    return subprocess.run(["cat", *present], check=True, capture_output=True).stdout


def tenant_row(tenant_id: str) -> dict[str, str]:
    """A tenant's row with nothing else: the least a test of the file can write."""
    return {
        "tenant_id": tenant_id,
        "tenant_code": tenant_id,
        "name": tenant_id,
        "domain_name": "https://auth.example.com",
        "last_sync_time": "20261207120000000",
    }
