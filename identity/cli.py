"""The `identity` command: serve, migrate, inspect tenants."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from pydantic import ValidationError

from identity import migrate as migrations
from identity.db import Database
from identity.directory import report
from identity.provider.cli import clients_app, keys_app
from identity.settings import Settings
from identity.simulator.cli import app as simulate_app

app = typer.Typer(
    help="identity: KooGallery joint-operation identity service", no_args_is_help=True
)
tenants_app = typer.Typer(help="Inspect the mirrored tenants", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
app.add_typer(simulate_app, name="simulate", help="A local KooGallery: auth centre and sender")
app.add_typer(clients_app, name="clients")
app.add_typer(keys_app, name="keys")

T = TypeVar("T")


def _read(settings: Settings, query: Callable[[Any], Awaitable[T]]) -> T:
    async def run() -> T:
        db = Database(settings.database_url)
        try:
            async with db.read() as session:
                return await query(session)
        finally:
            await db.dispose()

    return asyncio.run(run())


def load_settings() -> Settings:
    """The settings, or one line per problem and exit 2: no traceback, and never a value."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(part) for part in error["loc"])
            name = f"IDENTITY_{where.upper()}: " if where else ""
            message = error["msg"].removeprefix("Value error, ")
            typer.echo(f"identity: invalid settings: {name}{message}", err=True)
        raise typer.Exit(2) from None


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on"),
    port: int = typer.Option(8000, help="Port to listen on"),
) -> None:
    """Serve HTTP. The embedded SQLite default is migrated first; elsewhere run `migrate`."""
    from identity import serving
    from identity.app import create_app

    settings = load_settings()
    if settings.is_embedded_default:
        settings = settings.with_embedded_secret()
        migrations.upgrade(settings.database_url, settings.secret_key)
    try:
        service = create_app(settings)
        sockets = serving.listen(settings, host, port)
    except (OSError, ValueError, RuntimeError) as exc:
        typer.echo(f"identity: cannot serve: {exc}", err=True)
        raise typer.Exit(1) from None
    serving.run(service, settings, sockets)


@app.command()
def worker(once: bool = typer.Option(False, "--once", help="One pass, then exit")) -> None:
    """Purge expired sessions, old nonces and old audit rows; safe to run as several replicas."""
    from identity import worker as jobs
    from identity.observability import configure_logging

    settings = load_settings()
    if settings.is_embedded_default:
        settings = settings.with_embedded_secret()
    configure_logging(settings.log_level)
    asyncio.run(jobs.run(settings, once=once))


@app.command()
def demo(
    folder: Path = typer.Option(Path("identity-demo"), "--dir", help="Where the demo keeps state"),
    host: str = typer.Option("127.0.0.1", help="Interface for both servers"),
    port: int = typer.Option(8000, help="identity's port"),
    sim_port: int = typer.Option(8001, help="The simulator's port"),
    app_port: int = typer.Option(8002, help="The example ISV app's port"),
) -> None:
    """The service on embedded SQLite plus the simulator with a ready scenario; prints where to
    sign in as a member."""
    from identity.simulator import demo as demo_run

    demo_run.run(folder, host, port, sim_port, app_port, typer.echo)


@app.command()
def migrate() -> None:
    """Bring the database schema to the newest revision."""
    settings = load_settings()
    if settings.is_embedded_default:
        settings = settings.with_embedded_secret()
    migrations.upgrade(settings.database_url, settings.secret_key)
    typer.echo("database is at the newest revision")


@tenants_app.command("list")
def tenants_list(as_json: bool = typer.Option(False, "--json", help="JSON output")) -> None:
    """List every tenant the marketplace has synced."""
    rows = _read(load_settings(), report.list_tenants)
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['tenantId']}\t{row['tenantCode']}\t{row['state']}\t{row['name']}")


@tenants_app.command("show")
def tenants_show(
    tenant_id: str, as_json: bool = typer.Option(False, "--json", help="JSON output")
) -> None:
    """One tenant: instances, app credentials (never secrets), departments, members."""
    shown = _read(load_settings(), lambda s: report.show_tenant(s, tenant_id))
    if shown is None:
        typer.echo(f"no tenant {tenant_id}", err=True)
        raise typer.Exit(1)
    _print_json(shown)


if __name__ == "__main__":
    app()
