"""Where an `identity simulate` command sends its calls, and with which keys: its options, a
demo folder (demo_dir.py), identity's own settings, the defaults, in that order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from identity import demo_dir
from identity.settings import Settings
from identity.simulator.wire import DeliveryError, Keys

DEFAULT_IDENTITY = "http://127.0.0.1:8000"
DEFAULT_AUTH_CENTRE = "http://127.0.0.1:8001"

ScenarioOpt = Annotated[
    Path | None,
    typer.Option(help="Scenario JSON file (default: the built-in demo)", dir_okay=False),
]
IdentityOpt = Annotated[
    str | None,
    typer.Option(
        help="identity's base URL: where calls go, and the callback's base "
        f"(default: the demo's, else {DEFAULT_IDENTITY})",
        show_default=False,
    ),
]
AuthCentreOpt = Annotated[
    str | None,
    typer.Option(
        help="Auth centre URL sent as every tenant's domainName (tenantSync) "
        f"(default: the demo's simulator, else {DEFAULT_AUTH_CENTRE})",
        show_default=False,
    ),
]
DemoDirOpt = Annotated[
    Path | None,
    typer.Option(
        help="Folder of a running `identity demo`: its keys and addresses, over IDENTITY_* "
        f"(default: ./{demo_dir.DEFAULT} when it holds one and no marketplace key is set)",
        show_default=False,
    ),
]
V1Opt = Annotated[
    bool,
    typer.Option(
        "--v1",
        help="Send the calls as V1 did (GET basic calls, authToken, Body-Sign), signed with "
        "IDENTITY_MARKETPLACE_V1_KEY",
    ),
]
NotifyFileOpt = Annotated[
    Path | None,
    typer.Option(
        envvar="IDENTITY_NOTIFY_FILE",
        help="The development sender's file: the buyer's console appends the initial "
        "passwords and reset codes it sends there, one JSON line each "
        "(default: IDENTITY_NOTIFY_FILE)",
        dir_okay=False,
        show_default=False,
    ),
]
ConsoleAnywhereOpt = Annotated[
    bool,
    typer.Option(
        "--console-anywhere",
        help="Let the buyer's console (/console) answer other machines too, not only this one",
    ),
]
BasicKeyOpt = Annotated[
    str | None, typer.Option(help="Basic access key (default: IDENTITY_MARKETPLACE_BASIC_KEY)")
]
KitKeyOpt = Annotated[
    str | None, typer.Option(help="Kit access key (default: IDENTITY_MARKETPLACE_KIT_KEY)")
]
PrivateKeyOpt = Annotated[
    Path | None,
    typer.Option(
        help="Seller RSA private key PEM (default: IDENTITY_MARKETPLACE_PRIVATE_KEY_FILE)",
        dir_okay=False,
    ),
]


@dataclass(frozen=True)
class Target:
    """What every event command shares: the scenario, identity, and the keys."""

    scenario: Path | None
    identity: str
    auth_centre: str
    basic_key: str | None
    kit_key: str | None
    private_key_file: Path | None
    demo: Path | None = None
    """The demo folder identity's address came from, named when identity cannot be reached."""

    def v1_key(self) -> str:
        """The seller's V1 key, for `--v1`."""
        try:
            key = _secret(Settings().marketplace_v1_key)
        except ValueError as exc:
            raise DeliveryError(f"cannot read identity's settings: {exc}") from None
        if not key:
            raise DeliveryError("--v1 needs the seller's V1 key: set IDENTITY_MARKETPLACE_V1_KEY")
        return key

    def keys(self) -> Keys:
        try:
            settings = Settings()
        except ValueError as exc:  # pydantic's ValidationError: a bad IDENTITY_* variable
            raise DeliveryError(f"cannot read identity's settings: {exc}") from None
        basic = self.basic_key or _secret(settings.marketplace_basic_key)
        kit = self.kit_key or _secret(settings.marketplace_kit_key)
        key_file = self.private_key_file or settings.marketplace_private_key_file
        if key_file is None:
            return Keys(basic, kit)
        try:
            return Keys.from_private_key_pem(basic, kit, key_file.read_bytes())
        except (OSError, ValueError, TypeError) as exc:
            raise DeliveryError(f"cannot read the seller private key {key_file}: {exc}") from None


def resolve_target(
    scenario: Path | None,
    identity: str | None,
    auth_centre: str | None,
    basic_key: str | None,
    kit_key: str | None,
    private_key_file: Path | None,
    demo_folder: Path | None,
) -> Target:
    """Options first, then the demo's values (demo_dir.py says which demo), then the defaults;
    a --demo-dir without a demo is one line and exit 2."""
    implicit_off = demo_folder is None and bool(
        basic_key
        or kit_key
        or private_key_file
        or demo_dir.configured(demo_dir.MARKETPLACE_SETTINGS)
    )
    needs = (demo_dir.KEYS, demo_dir.PRIVATE_KEY, demo_dir.ADDRESSES)
    try:
        demo = demo_dir.find(demo_folder, needs, implicit_off)
    except demo_dir.DemoDirError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if demo is None:
        identity, auth_centre = identity or DEFAULT_IDENTITY, auth_centre or DEFAULT_AUTH_CENTRE
        return Target(scenario, identity, auth_centre, basic_key, kit_key, private_key_file)
    return Target(
        scenario,
        identity or demo.addresses["identity"],
        auth_centre or demo.addresses["simulator"],
        basic_key or demo.keys["basic"],
        kit_key or demo.keys["kit"],
        private_key_file or demo.private_key_file,
        demo.folder if identity is None else None,
    )


def _secret(value: object) -> str | None:
    get = getattr(value, "get_secret_value", None)
    return str(get()) if get is not None else None
