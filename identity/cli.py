"""The `identity` command: serve, migrate, inspect tenants."""

from __future__ import annotations

import asyncio
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from typer.core import TyperGroup

from identity import cli_db, demo_dir
from identity import migrate as migrations
from identity.crypto import Cipher
from identity.directory import report
from identity.marketplace import order_details
from identity.provider.cli import clients_app, keys_app
from identity.settings import Settings, load_settings


class _Simulate(TyperGroup):
    """`identity simulate`, whose commands are loaded when it is run or its help is shown: the
    simulator (the auth centre, its FastAPI app) costs every other command nothing. The
    context and commands are typer's click types (vendored by newer typer), hence Any."""

    _loaded: TyperGroup | None = None

    def _simulator(self) -> TyperGroup:
        if self._loaded is None:
            from identity.simulator.cli import app as simulate_app

            self._loaded = typer.main.get_group(simulate_app)
        return self._loaded

    def list_commands(self, ctx: Any) -> list[str]:
        return self._simulator().list_commands(ctx)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return self._simulator().get_command(ctx, cmd_name)


app = typer.Typer(
    help="identity: KooGallery joint-operation identity service",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
tenants_app = typer.Typer(help="Inspect the mirrored tenants", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
instances_app = typer.Typer(help="Inspect the instances (orders)", no_args_is_help=True)
app.add_typer(instances_app, name="instances")
app.add_typer(
    typer.Typer(cls=_Simulate, no_args_is_help=True),
    name="simulate",
    help="A local KooGallery: auth centre and sender (--demo-dir: drive a running demo)",
)
app.add_typer(clients_app, name="clients")
app.add_typer(keys_app, name="keys")


def _print_version(shown: bool) -> None:
    if shown:
        typer.echo(f"identity {metadata.version('identity')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version"
    ),
) -> None:
    """The options every command shares (typer's place for them)."""


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on"),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on"),
    workers: int = typer.Option(
        0,
        min=0,
        help="Server processes on the port; 0 (the default): one per core this process may use",
    ),
) -> None:
    """Serve HTTP. The embedded SQLite default is migrated first; elsewhere run `migrate`."""
    from identity import serving
    from identity import workers as supervisor
    from identity.app import create_app

    settings = _listening_at(load_settings(with_key=True), host, port)
    if settings.is_embedded_default:
        _migrate(settings)
    _refuse_another_schema(settings, "serve")
    try:
        service = create_app(settings)
        sockets = serving.listen(settings, host, port)
    except (OSError, ValueError, RuntimeError) as exc:
        typer.echo(f"identity: cannot serve: {exc}", err=True)
        raise typer.Exit(1) from None
    count = workers or supervisor.default_count()
    for line in _started(settings, host, port):
        typer.echo(line)
    if count == 1:
        serving.run(service, settings, sockets)
        return
    typer.echo(f"  workers      {count} processes")
    # each worker builds its own app: no database pool or client is shared across a fork
    try:
        code = supervisor.supervise(
            count, lambda: serving.run(create_app(settings), settings, sockets)
        )
    finally:
        for listening in sockets:
            listening.close()
    raise typer.Exit(code)


def _listening_at(settings: Settings, host: str, port: int) -> Settings:
    """IDENTITY_BASE_URL, when not set, is where the service listens: links and redirects
    then point at it (`PORT=18000 make serve` must not send browsers to port 8000)."""
    if "base_url" in settings.model_fields_set:
        return settings
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - a comparison
    return settings.model_copy(update={"base_url": f"http://{shown}:{port}"})


def _started(settings: Settings, host: str, port: int) -> list[str]:
    """What an operator wants to see once: where, which public URL, which database (no
    password) at which schema revision, or that the database cannot be reached yet."""
    where = cli_db.shown(settings)
    lines = [
        f"identity listening on http://{host}:{port}",
        f"  public URL   {settings.base_url}",
    ]
    listening = urlsplit(settings.base_url)
    if "base_url" in settings.model_fields_set and listening.port not in (port, None):
        lines.append(f"  note: IDENTITY_BASE_URL names port {listening.port}; a proxy must forward")
    try:
        revision = asyncio.run(cli_db.revision(settings))
        lines.append(f"  database     {where} (schema {revision or 'not migrated'})")
    except Exception as exc:  # the service starts anyway; /readyz answers 503 until it is up
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:160]
        lines.append(f"  warning: database {where} cannot be reached yet: {reason}")
    return lines


def _refuse_another_schema(settings: Settings, command: str) -> None:
    """Exit 2, in one line, when the database's schema is not this release's: older (started
    before `identity migrate` finished) or newer (an image rolled back after a later release
    migrated it). A database that cannot be reached yet is not refused here: the service
    starts and `/readyz` answers 503 until it answers."""
    try:
        revision = asyncio.run(cli_db.revision(settings))
    except Exception:  # reported by the start-up lines (serve) or the first pass (worker)
        return
    problem = migrations.schema_problem(revision)
    if problem is not None:
        typer.echo(f"identity: cannot {command}: {problem}", err=True)
        raise typer.Exit(2)


@app.command()
def worker(
    once: bool = typer.Option(False, "--once", help="One pass, then exit"),
    metrics_host: str = typer.Option(
        "127.0.0.1", help="Interface for /metrics on IDENTITY_METRICS_PORT, when set"
    ),
) -> None:
    """Send back-channel logouts, purge expired sessions, old nonces and old audit rows; safe
    to run as several replicas. With IDENTITY_METRICS_PORT, serves its own `/metrics` there
    (`identity_backchannel_delivery_failures_total`)."""
    from prometheus_client import start_http_server

    from identity import worker as jobs
    from identity.observability import WorkerMetrics, configure_logging

    settings = load_settings()  # without a master key it purges, and sends no logouts
    if settings.is_embedded_default:
        settings = settings.with_embedded_secret()
    _refuse_another_schema(settings, "run the worker")
    configure_logging(settings.log_level)
    metrics = WorkerMetrics()
    if settings.metrics_port is not None and not once:
        try:
            start_http_server(settings.metrics_port, metrics_host, metrics.registry)
        except OSError as exc:
            port = settings.metrics_port
            typer.echo(f"identity: cannot serve metrics on port {port}: {exc}", err=True)
            raise typer.Exit(1) from None
    try:
        asyncio.run(jobs.run(settings, once=once, metrics=metrics))
    except (OperationalError, OSError) as exc:
        cli_db.unreachable(settings, exc)


@app.command()
def demo(
    folder: Path = typer.Option(
        demo_dir.DEFAULT,
        "--dir",
        help="Where the demo keeps state; other commands find it with --demo-dir",
    ),
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
    _migrate(load_settings(with_key=True))
    typer.echo("database is at the newest revision")


def _migrate(settings: Settings) -> None:
    try:
        migrations.upgrade(settings.database_url, settings.secret_key)
    except (OperationalError, OSError) as exc:
        cli_db.unreachable(settings, exc)


@tenants_app.command("list")
def tenants_list(
    as_json: bool = typer.Option(False, "--json", help="JSON output"),
    folder: cli_db.DemoDir = None,
) -> None:
    """List every tenant the marketplace has synced."""
    rows = cli_db.read(folder, lambda session, _: report.list_tenants(session))
    if as_json:
        cli_db.print_json(rows)
        return
    if not rows:
        typer.echo("no tenants yet: the marketplace has not synced any (tenantSync)")
    for row in rows:
        typer.echo(f"{row['tenantId']}\t{row['tenantCode']}\t{row['state']}\t{row['name']}")


@tenants_app.command("show")
def tenants_show(
    tenant_id: str,
    as_json: bool = typer.Option(False, "--json", help="JSON output"),
    folder: cli_db.DemoDir = None,
) -> None:
    """One tenant, by id or code: instances, app credentials (never secrets), departments,
    members."""
    shown = cli_db.read(folder, lambda session, _: report.show_tenant(session, tenant_id))
    if shown is None:
        typer.echo(f"no tenant {tenant_id}", err=True)
        raise typer.Exit(1)
    cli_db.print_json(shown)


@instances_app.command("show")
def instances_show(
    instance_id: str,
    as_json: bool = typer.Option(False, "--json", help="JSON output"),
    folder: cli_db.DemoDir = None,
) -> None:
    """One instance: its order line, status, product and expiry, the tenants bound to it, and
    the order the marketplace's order API gave (`order`, decrypted with the master key)."""

    async def query(session: AsyncSession, settings: Settings) -> dict[str, Any] | None:
        key = settings.secret_key or cli_db.master_key(settings)
        cipher = Cipher(key.get_secret_value()) if key else None
        return await order_details.show_instance(session, cipher, instance_id)

    shown = cli_db.read(folder, query)
    if shown is None:
        typer.echo(f"no instance {instance_id}", err=True)
        raise typer.Exit(1)
    cli_db.print_json(shown)


if __name__ == "__main__":
    app()
