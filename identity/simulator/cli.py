"""`identity simulate`: run the auth centre, and play marketplace events against identity.

Keys come from the variables identity itself reads (`IDENTITY_MARKETPLACE_BASIC_KEY`,
`IDENTITY_MARKETPLACE_KIT_KEY`, `IDENTITY_MARKETPLACE_PRIVATE_KEY_FILE`, and a `.env` file),
so one environment configures both sides; the options override them. `--demo-dir` takes the
keys and addresses of a running `identity demo` instead (target.py has the order, demo_dir.py
says when ./identity-demo applies without it). KooGallery holds only the seller's public key
(§2.7): it is derived here from the private key file.

Every event command prints one line per delivered call and exits 1 with a message naming the
call when identity refuses it (resultCode not 000000) or cannot be reached.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

import httpx2 as httpx
import typer
from fastapi import FastAPI

from identity.marketplace.signing import Kind
from identity.simulator import sender as events
from identity.simulator.authcentre import UNIFIED_LOGIN_PATH, create_auth_centre
from identity.simulator.conformance.cli import conformance
from identity.simulator.console.state import setup_from
from identity.simulator.scenario import Scenario, ScenarioError, TenantSpec, load_scenario
from identity.simulator.sender import DeliveryError, Keys, KooGallery, Unreachable
from identity.simulator.target import (
    DEFAULT_IDENTITY,
    AuthCentreOpt,
    BasicKeyOpt,
    ConsoleAnywhereOpt,
    DemoDirOpt,
    IdentityOpt,
    KitKeyOpt,
    NotifyFileOpt,
    PrivateKeyOpt,
    ScenarioOpt,
    Target,
    V1Opt,
    resolve_target,
)
from identity.simulator.v1_wire import V1KooGallery

HEALTH_POLL_SECONDS = 0.5

app = typer.Typer(
    help="A local KooGallery: a OneAccess-shaped auth centre, and signed marketplace calls "
    "(tenant, app, departments, members, instance lifecycle) delivered to a running identity.",
    no_args_is_help=True,
)

TenantArg = Annotated[str, typer.Argument(help="tenantId or tenantCode")]
UserArg = Annotated[str, typer.Argument(help="The member's userName (account)")]

Action = Callable[[KooGallery, Scenario], Awaitable[object]]


def _deliver(target: Target, action: Action, v1: bool = False) -> None:
    """Run one event against identity; a refusal or an unreachable identity exits 1. `v1`:
    sent as V1 calls (`v1_wire`)."""

    async def run(scenario: Scenario, keys: Keys) -> None:
        async with httpx.AsyncClient(base_url=target.identity, timeout=20.0) as client:
            sender: KooGallery
            if v1:
                sender = V1KooGallery(
                    client, keys, key=target.v1_key(), app_id=scenario.app_id,
                    auth_centre=target.auth_centre, report=typer.echo,
                )  # fmt: skip
            else:
                sender = KooGallery(
                    client, keys, app_id=scenario.app_id,
                    auth_centre=target.auth_centre, report=typer.echo,
                )  # fmt: skip
            await action(sender, scenario)

    try:
        asyncio.run(run(load_scenario(target.scenario), target.keys()))
    except (ScenarioError, DeliveryError) as exc:
        hint = ""
        if isinstance(exc, Unreachable) and target.demo is not None:
            hint = f" (is the demo in {target.demo} running?)"
        typer.echo(f"error: {exc}{hint}", err=True)
        raise typer.Exit(1) from None


TenantOperation = Callable[[KooGallery, TenantSpec], Awaitable[object]]
MemberOperation = Callable[[KooGallery, TenantSpec, str], Awaitable[object]]


def _tenant_command(name: str, operation: TenantOperation, help_text: str) -> None:
    @app.command(name, help=help_text)
    def command(
        tenant: TenantArg,
        scenario: ScenarioOpt = None,
        identity: IdentityOpt = None,
        auth_centre: AuthCentreOpt = None,
        basic_key: BasicKeyOpt = None,
        kit_key: KitKeyOpt = None,
        private_key_file: PrivateKeyOpt = None,
        demo_dir: DemoDirOpt = None,
        v1: V1Opt = False,
    ) -> None:
        to = resolve_target(
            scenario, identity, auth_centre, basic_key, kit_key, private_key_file, demo_dir
        )
        _deliver(to, lambda s, world: operation(s, world.tenant(tenant)), v1)


def _member_command(name: str, operation: MemberOperation, help_text: str) -> None:
    @app.command(name, help=help_text)
    def command(
        tenant: TenantArg,
        user: UserArg,
        scenario: ScenarioOpt = None,
        identity: IdentityOpt = None,
        auth_centre: AuthCentreOpt = None,
        basic_key: BasicKeyOpt = None,
        kit_key: KitKeyOpt = None,
        private_key_file: PrivateKeyOpt = None,
        demo_dir: DemoDirOpt = None,
        v1: V1Opt = False,
    ) -> None:
        to = resolve_target(
            scenario, identity, auth_centre, basic_key, kit_key, private_key_file, demo_dir
        )
        _deliver(to, lambda s, world: operation(s, world.tenant(tenant), user), v1)


# --- serve ------------------------------------------------------------------------------------


@app.command()
def serve(
    scenario: ScenarioOpt = None,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8001,
    identity: IdentityOpt = None,
    auth_centre: Annotated[
        str | None, typer.Option(help="domainName sent to identity (default: http://HOST:PORT)")
    ] = None,
    provision: Annotated[
        bool, typer.Option(help="Once identity's /healthz answers, provision every tenant")
    ] = True,
    code_seconds: Annotated[float, typer.Option(help="Authorization code lifetime")] = 60,
    access_token_seconds: Annotated[int, typer.Option(help="Access token lifetime")] = 7200,
    refresh_token_seconds: Annotated[int, typer.Option(help="Refresh token lifetime")] = 2592000,
    basic_key: BasicKeyOpt = None,
    kit_key: KitKeyOpt = None,
    private_key_file: PrivateKeyOpt = None,
    demo_dir: DemoDirOpt = None,
    notify_file: NotifyFileOpt = None,
    console_anywhere: ConsoleAnywhereOpt = False,
) -> None:
    """Serve the auth centre and the buyer's console (/console); with --provision, provision
    every tenant once identity is up."""
    base = auth_centre or f"http://{host}:{port}"
    target = resolve_target(
        scenario, identity, base, basic_key, kit_key, private_key_file, demo_dir
    )
    try:
        world = load_scenario(scenario)
        keys = _provisioning_keys(target) if provision else None
    except (ScenarioError, DeliveryError) as exc:
        hint = " (or serve with --no-provision)" if isinstance(exc, DeliveryError) else ""
        typer.echo(f"error: {exc}{hint}", err=True)
        raise typer.Exit(1) from None
    console, warning = setup_from(target.identity, base, target.keys, notify_file, console_anywhere)
    if warning:
        typer.echo(f"warning: {warning}", err=True)
    centre = create_auth_centre(
        world,
        callback_base=target.identity,
        code_seconds=code_seconds,
        access_token_seconds=access_token_seconds,
        refresh_token_seconds=refresh_token_seconds,
        console=console,
    )
    _banner(world, base, target.identity)
    asyncio.run(_serve(centre, host, port, world, target, keys))


def _provisioning_keys(target: Target) -> Keys:
    """Fail before serving, not halfway through provisioning, when a key is missing."""
    keys = target.keys()
    keys.access_key(Kind.BASIC)
    keys.access_key(Kind.KIT)
    if keys.public_key is None:
        raise DeliveryError("provisioning needs IDENTITY_MARKETPLACE_PRIVATE_KEY_FILE")
    return keys


def _banner(world: Scenario, base: str, identity: str) -> None:
    typer.echo(f"auth centre   {base}  (every tenant's domainName)")
    typer.echo(f"callback      {identity.rstrip('/')}/sso/callback/{world.app_id}")
    typer.echo(f"unified login {base}{UNIFIED_LOGIN_PATH}?ind=UNOP&appId={world.app_id}")
    if world.buyer is not None:
        typer.echo(f"console       {base}/console  (buyer {world.buyer.account})")
    for t in world.tenants:
        accounts = ", ".join(f"{m.user_name}@{t.tenant_code}" for m in t.members)
        typer.echo(f"tenant        {t.tenant_id} ({t.name}): {accounts}")


async def _serve(
    centre: FastAPI, host: str, port: int, world: Scenario, target: Target, keys: Keys | None
) -> None:
    import uvicorn

    config = uvicorn.Config(centre, host=host, port=port, log_level="warning", access_log=False)
    task = asyncio.create_task(provision_when_ready(world, target, keys)) if keys else None
    try:
        await uvicorn.Server(config).serve()
    finally:
        if task is not None:
            task.cancel()


async def provision_when_ready(world: Scenario, target: Target, keys: Keys) -> None:
    """Wait for identity's /healthz, then provision every tenant; a failure is printed and the
    auth centre keeps serving (it is still useful for logging in to what identity holds)."""
    async with httpx.AsyncClient(base_url=target.identity, timeout=20.0) as client:
        await wait_until_healthy(client)
        sender = KooGallery(
            client, keys, app_id=world.app_id, auth_centre=target.auth_centre, report=typer.echo
        )
        for tenant in world.tenants:
            try:
                await events.provision(sender, tenant)
            except DeliveryError as exc:
                typer.echo(f"error: provisioning {tenant.tenant_id}: {exc}", err=True)


async def wait_until_healthy(client: httpx.AsyncClient) -> None:
    told = False
    while True:
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if not told:
            typer.echo(f"waiting for identity at {client.base_url} (/healthz) …")
            told = True
        await asyncio.sleep(HEALTH_POLL_SECONDS)


# --- events -------------------------------------------------------------------------------------


@app.command("provision")
def provision_command(
    tenant: Annotated[
        str | None, typer.Argument(help="tenantId or tenantCode (default: every tenant)")
    ] = None,
    scenario: ScenarioOpt = None,
    identity: IdentityOpt = None,
    auth_centre: AuthCentreOpt = None,
    basic_key: BasicKeyOpt = None,
    kit_key: KitKeyOpt = None,
    private_key_file: PrivateKeyOpt = None,
    demo_dir: DemoDirOpt = None,
    v1: V1Opt = False,
) -> None:
    """Purchase, bind, authorise (newInstance, tenantSync, applicationSync, allOrgSync, authSync).

    For one tenant or every tenant; authSync carries the members marked authorised.
    """

    async def provision_all(s: KooGallery, world: Scenario) -> None:
        for spec in [world.tenant(tenant)] if tenant else world.tenants:
            await events.provision(s, spec)

    to = resolve_target(
        scenario, identity, auth_centre, basic_key, kit_key, private_key_file, demo_dir
    )
    _deliver(to, provision_all, v1)


_tenant_command("bind", events.bind, "Bind the app: tenantSync, applicationSync, allOrgSync.")
_tenant_command("unbind", events.unbind, "Unbind the enterprise: tenantSync flag 0.")
_member_command("add-member", events.add_member, "Authorise a member: authSync flag 1.")
_member_command("disable-member", events.disable_member, 'Disable: authSync flag 2, "false".')
_member_command("enable-member", events.enable_member, 'Enable: authSync flag 2, "true".')
_member_command("delete-member", events.delete_member, "Member deleted: authSync flag 0.")
_member_command("cancel-auth", events.cancel_authorisation, "Cancel: authSync flag 3.")


@app.command("move-department")
def move_department_command(
    tenant: TenantArg,
    org: Annotated[str, typer.Argument(help="orgCode of the department to move")],
    parent: Annotated[str, typer.Argument(help='New parentCode ("" for top level)')],
    scenario: ScenarioOpt = None,
    identity: IdentityOpt = None,
    auth_centre: AuthCentreOpt = None,
    basic_key: BasicKeyOpt = None,
    kit_key: KitKeyOpt = None,
    private_key_file: PrivateKeyOpt = None,
    demo_dir: DemoDirOpt = None,
) -> None:
    """Move a department under a new parent: singleOrgSync flag 2."""
    to = resolve_target(
        scenario, identity, auth_centre, basic_key, kit_key, private_key_file, demo_dir
    )
    _deliver(to, lambda s, world: events.move_department(s, world.tenant(tenant), org, parent))


_tenant_command(
    "new-instance",
    events.new_instance,
    "Buy the app: newInstance (identity reads the order from the order API when it has a key).",
)
_tenant_command("freeze", events.freeze, "Freeze the instance: updateInstanceStatus FREEZE.")
_tenant_command("unfreeze", events.unfreeze, "Unfreeze: updateInstanceStatus UNFREEZE.")
_tenant_command("release", events.release, "Release the instance: releaseInstance.")
app.command("conformance")(conformance)


# --- example app -------------------------------------------------------------------------------


@app.command("example-app")
def example_app(
    client_id: Annotated[str, typer.Option(help="Its client id at identity")],
    client_secret: Annotated[
        str, typer.Option(envvar="EXAMPLE_APP_CLIENT_SECRET", help="Its client secret")
    ],
    events_secret: Annotated[
        str | None,
        typer.Option(
            envvar="EXAMPLE_APP_EVENTS_SECRET",
            help="Its events secret: it then shows the tenant's people and hears their changes",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8002,
    identity: Annotated[str, typer.Option(help="identity's base URL")] = DEFAULT_IDENTITY,
    public_url: Annotated[
        str | None,
        typer.Option(help="Its address in browsers, behind a proxy (default: http://HOST:PORT)"),
    ] = None,
) -> None:
    """A small ISV app signing members in through identity (what `identity demo` runs)."""
    import uvicorn

    from identity.simulator.example_app import create_example_app

    base = (public_url or f"http://{host}:{port}").rstrip("/")
    uvicorn.run(
        create_example_app(identity.rstrip("/"), client_id, client_secret, base, events_secret),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
    )
