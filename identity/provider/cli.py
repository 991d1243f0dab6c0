"""`identity clients …` and `identity keys …`: the operator's side of the OpenID Provider.

Each command is one transaction against the configured database, or a demo's (`--demo-dir`,
`identity.cli_db`); the listings only read, and never create a database, a key or a signing
key. Secrets are printed once (`clients add`, `clients rotate-secret`, `clients
rotate-events-secret`) and never again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from identity import cli_db
from identity.crypto import Cipher
from identity.db import utcnow
from identity.provider import clients, keys
from identity.settings import Settings

T = TypeVar("T")

clients_app = typer.Typer(help="The ISV's apps, as OpenID Connect clients", no_args_is_help=True)
keys_app = typer.Typer(help="The provider's token signing keys", no_args_is_help=True)


def _cipher(settings: Settings) -> Cipher:
    assert settings.secret_key is not None
    return Cipher(settings.secret_key.get_secret_value())


def _lifetime(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.access_token_seconds)


JsonOpt = Annotated[bool, typer.Option("--json", help="JSON output")]
DemoDir = cli_db.DemoDir


@clients_app.command("add")
def clients_add(
    app_id: Annotated[str, typer.Option("--app", help="The KooGallery appId it signs in to")],
    name: Annotated[str, typer.Option(help="A name for people")],
    redirect_uri: Annotated[
        list[str] | None,
        typer.Option("--redirect-uri", help="Exact, repeatable; optional for a directory reader"),
    ] = None,
    post_logout_redirect_uri: Annotated[
        list[str] | None, typer.Option("--post-logout-redirect-uri", help="Repeatable")
    ] = None,
    backchannel_logout_uri: Annotated[str | None, typer.Option()] = None,
    initiate_login_uri: Annotated[str | None, typer.Option()] = None,
    home_uri: Annotated[
        str | None,
        typer.Option(help="The app's own page, linked from /sso/me when it has no initiate URI"),
    ] = None,
    public: Annotated[bool, typer.Option("--public", help="No secret; PKCE required")] = False,
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help=f"Beyond OpenID's: {', '.join(clients.EXTRA_SCOPES)}"),
    ] = None,
    directory: Annotated[
        bool, typer.Option("--directory", help=f"The same as --scope {clients.DIRECTORY_SCOPE}")
    ] = False,
    events_uri: Annotated[
        str | None,
        typer.Option(help="Where the directory's change events are POSTed (needs --directory)"),
    ] = None,
    as_json: JsonOpt = False,
    folder: DemoDir = None,
) -> None:
    """Register an app; prints its client id and, once, its secret (and its events secret)."""
    scopes = sorted(set(scope or []) | ({clients.DIRECTORY_SCOPE} if directory else set()))
    registration = clients.Registration(
        app_id=app_id,
        name=name,
        redirect_uris=redirect_uri or [],
        post_logout_redirect_uris=post_logout_redirect_uri or [],
        backchannel_logout_uri=backchannel_logout_uri,
        initiate_login_uri=initiate_login_uri,
        public=public,
        home_uri=home_uri,
        scopes=scopes,
        events_uri=events_uri,
    )
    try:
        added = cli_db.write(
            folder, lambda s, settings: clients.add(s, registration, _cipher(settings))
        )
    except clients.ClientError as exc:
        typer.echo(f"identity: {exc}", err=True)
        raise typer.Exit(2) from None
    shown = {
        "client_id": added.client_id,
        **({} if added.secret is None else {"client_secret": added.secret}),
        **({} if added.events_secret is None else {"events_secret": added.events_secret}),
    }
    if as_json:
        cli_db.print_json(shown)
    else:
        typer.echo("\n".join(f"{k}: {v}" for k, v in shown.items()))


@clients_app.command("list")
def clients_list(as_json: JsonOpt = False, folder: DemoDir = None) -> None:
    """Every registered client (never a secret)."""
    found = cli_db.read(folder, lambda s, _: clients.all_clients(s))
    if as_json:
        cli_db.print_json([clients.describe(c) for c in found])
        return
    for c in found:
        typer.echo(
            f"{c.client_id}\t{c.app_id}\t{'public' if c.public else 'confidential'}\t{c.name}"
        )


@clients_app.command("show")
def clients_show(client_id: str, as_json: JsonOpt = False, folder: DemoDir = None) -> None:
    """One client (never its secret)."""
    found = cli_db.read(folder, lambda s, _: clients.get(s, client_id))
    if found is None:
        typer.echo(f"identity: no client {client_id}", err=True)
        raise typer.Exit(1)
    cli_db.print_json(clients.describe(found))


@clients_app.command("remove")
def clients_remove(client_id: str, folder: DemoDir = None) -> None:
    """Remove a client: every token it was given stops being active at once."""
    if not cli_db.write(folder, lambda s, _: clients.remove(s, client_id)):
        typer.echo(f"identity: no client {client_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"removed {client_id}")


@clients_app.command("rotate-secret")
def clients_rotate_secret(client_id: str, as_json: JsonOpt = False, folder: DemoDir = None) -> None:
    """A new secret, printed once; the old one stops working."""
    secret = cli_db.write(folder, lambda s, _: clients.rotate_secret(s, client_id))
    if secret is None:
        typer.echo(f"identity: no confidential client {client_id}", err=True)
        raise typer.Exit(1)
    shown = {"client_id": client_id, "client_secret": secret}
    cli_db.print_json(shown) if as_json else typer.echo(f"client_secret: {secret}")


@clients_app.command("rotate-events-secret")
def clients_rotate_events_secret(
    client_id: str,
    overlap_hours: Annotated[
        float, typer.Option(min=0, help="How long the old secret keeps signing beside the new")
    ] = 24,
    as_json: JsonOpt = False,
    folder: DemoDir = None,
) -> None:
    """A new events secret, printed once; events carry both signatures for --overlap-hours."""

    async def work(session: AsyncSession, settings: Settings) -> str | None:
        overlap = timedelta(hours=overlap_hours)
        cipher = _cipher(settings)
        return await clients.rotate_events_secret(session, cipher, client_id, overlap, utcnow())

    secret = cli_db.write(folder, work)
    if secret is None:
        typer.echo(f"identity: no client {client_id} with an events URI", err=True)
        raise typer.Exit(1)
    shown = {"client_id": client_id, "events_secret": secret}
    cli_db.print_json(shown) if as_json else typer.echo(f"events_secret: {secret}")


@keys_app.command("list")
def keys_list(as_json: JsonOpt = False, folder: DemoDir = None) -> None:
    """Every signing key and its state: next, active or retired. The service makes the first
    when it first needs one (its JWKS, a token); listing never does."""

    async def work(session: AsyncSession, settings: Settings) -> list[dict[str, Any]]:
        lifetime = _lifetime(settings)
        return [k.describe() for k in keys.states(await keys.rows(session), utcnow(), lifetime)]

    found = cli_db.read(folder, work)
    if as_json:
        cli_db.print_json(found)
        return
    if not found:
        typer.echo("no signing keys yet: the service makes one when it needs it (or: keys rotate)")
    for k in found:
        typer.echo(f"{k['kid']}\t{k['alg']}\t{k['state']}\tfrom {k['activatesAt']}")


@keys_app.command("rotate")
def keys_rotate(
    alg: Annotated[str, typer.Option(help="ES256 or RS256")] = "ES256",
    activate_after: Annotated[
        int, typer.Option(min=0, help="Seconds it is published before it signs")
    ] = 3600,
    as_json: JsonOpt = False,
    folder: DemoDir = None,
) -> None:
    """A new key: in the JWKS at once, signing after --activate-after seconds."""
    if alg not in keys.ALGORITHMS:
        typer.echo(f"identity: --alg must be one of {', '.join(keys.ALGORITHMS)}", err=True)
        raise typer.Exit(2)

    async def work(session: AsyncSession, settings: Settings) -> str:
        now = utcnow()
        await keys.ensure(session, _cipher(settings), now, _lifetime(settings))
        activates = now + timedelta(seconds=activate_after)
        return await keys.create(
            session, _cipher(settings), alg=alg, activates_at=activates, now=now
        )

    kid = cli_db.write(folder, work)
    cli_db.print_json({"kid": kid, "alg": alg}) if as_json else typer.echo(kid)


@keys_app.command("revoke")
def keys_revoke(kid: str, folder: DemoDir = None) -> None:
    """Take a compromised key out of the JWKS and out of use at once; tokens it signed stop
    being active. A new key takes over if it was the active one."""

    async def work(session: AsyncSession, settings: Settings) -> bool:
        return await keys.revoke(session, _cipher(settings), kid, utcnow(), _lifetime(settings))

    if not cli_db.write(folder, work):
        typer.echo(f"identity: no key {kid}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {kid}")
