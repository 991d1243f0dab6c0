"""The database as the operator's commands open it: which one, and never by accident.

Which: `--demo-dir DIR` (a running demo's), else the demo in ./identity-demo when the settings
name no database, else the settings' (`demo_dir.find` says exactly when). How: a command
checks the database before it uses it, and a database that is missing, not migrated, at
another release's schema or out of reach is one line on stderr and exit 2. Opening an SQLite
path creates the file, so a missing file is refused before anything opens it: a command run in
the wrong folder leaves nothing behind. Only `serve`, `migrate`, `demo` and `worker` create
the embedded database or its master key; the other commands read the key they need.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import SecretStr
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from identity import demo_dir
from identity import migrate as migrations
from identity.db import Database, async_url
from identity.settings import DEFAULT_DATABASE_URL, Settings, load_settings

T = TypeVar("T")

DEMO_DIR_HELP = (
    "Folder of an `identity demo`: use its database and master key, over IDENTITY_DATABASE_URL "
    f"(default: ./{demo_dir.DEFAULT} when it holds one and IDENTITY_DATABASE_URL is not set)"
)
DemoDir = Annotated[Path | None, typer.Option("--demo-dir", help=DEMO_DIR_HELP, show_default=False)]


Work = Callable[[AsyncSession, Settings], Awaitable[T]]
"""A command's statements, given the session and the settings it runs with."""


def read(folder: Path | None, query: Work[T]) -> T:
    """`query` in a read-only session on the command's database (`settings_for`), once it is
    found sound (`check`)."""
    settings = settings_for(folder)
    check(settings)
    return _run(settings, query, write=False)


def write(folder: Path | None, work: Work[T]) -> T:
    """`work` in one transaction on the command's database, once it is found sound, with the
    master key (a command never creates one)."""
    settings = settings_for(folder)
    check(settings)
    if settings.secret_key is None:
        try:
            settings = settings.with_embedded_secret(create=False)
        except RuntimeError as exc:
            refuse(str(exc))
    return _run(settings, work, write=True)


def master_key(settings: Settings) -> SecretStr | None:
    """The master key a read may use to decrypt, when there is one (never created here)."""
    try:
        return settings.with_embedded_secret(create=False).secret_key
    except RuntimeError:
        return None


def settings_for(folder: Path | None) -> Settings:
    """identity's settings, or a demo's database and master key in their place."""
    settings = load_settings()
    configured = folder is None and "database_url" in settings.model_fields_set
    try:
        demo = demo_dir.find(folder, (demo_dir.DATABASE, demo_dir.KEYS), configured)
    except demo_dir.DemoDirError as exc:
        refuse(str(exc))
    if demo is None:
        return settings
    embedded = Path(make_url(DEFAULT_DATABASE_URL).database or "")
    if folder is None and embedded.is_file():  # `identity serve`'s database is here too
        typer.echo(
            f"identity: reading the demo's database in ./{demo_dir.DEFAULT} "
            f"(for ./{embedded.name}, set IDENTITY_DATABASE_URL)",
            err=True,
        )
    secret = SecretStr(demo.keys["secret"])
    return settings.model_copy(update={"database_url": demo.database_url, "secret_key": secret})


def _run(settings: Settings, work: Work[T], *, write: bool) -> T:
    async def run() -> T:
        db = Database(settings.database_url)
        try:
            async with db.transaction() if write else db.read() as session:
                result = await work(session, settings)
                if not write:  # what it read stays readable after the read's rollback
                    session.expunge_all()
                return result
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except (OperationalError, OSError) as exc:
        unreachable(settings, exc)


def check(settings: Settings) -> None:
    """The database exists, answers, and has this release's schema; else one line, exit 2."""
    path = sqlite_file(settings.database_url)
    if path is not None and not path.is_file():
        refuse(
            f"no database at {path.resolve()}: `identity serve` creates the embedded one, "
            "`identity migrate` any other (a demo's: --demo-dir)"
        )
    try:
        found = asyncio.run(revision(settings))
    except (OperationalError, OSError) as exc:
        unreachable(settings, exc)
    problem = migrations.schema_problem(found)
    if problem is not None:
        refuse(f"{problem} ({shown(settings)})")


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite database URL; None for an in-memory one or another database."""
    parsed = make_url(async_url(url))
    name = parsed.database or ""
    if not parsed.drivername.startswith("sqlite") or name in ("", ":memory:"):
        return None
    return None if name.startswith("file:") else Path(name)


async def revision(settings: Settings) -> str | None:
    """The schema revision the database is at; None when it was never migrated (or, for an
    SQLite file, does not exist yet: it is not created to find out)."""
    path = sqlite_file(settings.database_url)
    if path is not None and not path.is_file():
        return None
    db = Database(settings.database_url)
    try:
        async with db.engine.connect() as conn:
            if not await conn.run_sync(lambda sync: inspect(sync).has_table("alembic_version")):
                return None
            found = await conn.scalar(text("SELECT version_num FROM alembic_version"))
            return None if found is None else str(found)
    finally:
        await db.dispose()


def shown(settings: Settings) -> str:
    """The database's URL as an operator may see it (no password)."""
    return make_url(async_url(settings.database_url)).render_as_string(hide_password=True)


def unreachable(settings: Settings, exc: BaseException) -> NoReturn:
    """A database that cannot be reached, or an SQLite file that cannot be opened: one line
    naming it (no password), exit 2."""
    cause = getattr(exc, "orig", None) or exc
    if isinstance(cause, OSError) and cause.strerror:
        reason = cause.strerror
    else:
        reason = str(cause).strip().splitlines()[0][:200]
    path = sqlite_file(settings.database_url)
    if path is not None:  # a file that cannot be written (a read-only folder) or read
        refuse(f"cannot use the database file {path.resolve()} ({reason}): {MOVE_DATABASE}")
    refuse(f"cannot reach the database {shown(settings)}: {reason}")


MOVE_DATABASE = "IDENTITY_DATABASE_URL names another place (sqlite+aiosqlite:////data/identity.db)"


def refuse(line: str) -> NoReturn:
    typer.echo(f"identity: {line}", err=True)
    raise typer.Exit(2)


def print_json(value: Any) -> None:
    """What `--json` prints."""
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))
