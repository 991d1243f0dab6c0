"""Run the Alembic migrations in `migrations/` (beside the package in a checkout or image)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from pydantic import SecretStr

from identity.db import create_private_sqlite_file

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str, secret_key: SecretStr | None = None) -> Config:
    config = Config()
    config.attributes["secret_key"] = secret_key
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, secret_key: SecretStr | None = None) -> None:
    """Bring the schema to the newest revision. Blocking: call it outside an event loop.

    The master key lets a revision re-encrypt stored secrets (0003: version-1 ciphertexts); a
    database that holds some is refused without it. A fresh database never needs it.
    """
    create_private_sqlite_file(database_url)
    command.upgrade(alembic_config(database_url, secret_key), "head")


@cache
def _revisions() -> tuple[str, frozenset[str]]:
    """This release's newest revision, and every revision it knows."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    assert head is not None
    return head, frozenset(step.revision for step in script.walk_revisions())


def schema_problem(revision: str | None) -> str | None:
    """Why a database whose schema is at `revision` (None: not migrated) must not be served
    by this release, in one line; None when it is this release's newest.

    Older: a replica started before `identity migrate` finished (or without it). Newer: an
    image rolled back after a later release migrated the database; the older code must not
    write to a schema it does not know."""
    head, known = _revisions()
    if revision == head:
        return None
    if revision is None:
        return f"the database is not migrated; run `identity migrate` (to revision {head})"
    if revision in known:
        return (
            f"the database schema is at revision {revision}, older than this release's {head}; "
            "run `identity migrate` first"
        )
    return (
        f"the database schema is at revision {revision}, newer than this release's {head}: a "
        "later release migrated it; run that release, or restore the backup taken before it"
    )
