"""`identity simulate conformance`: the command line of the conformance kit.

The options are checked before anything is sent, each bad one named (exit 2); the run's
modules are imported only then, so the rest of `identity simulate` pays nothing for them.
Exit status: 0 when no case failed (skipped ones included), 1 when one did.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from identity.simulator.conformance.session import Options

DEFAULT_APP_ID = "conformance-app"


def _url(value: str, option: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter(f"{value!r} is not an http(s) URL", param_hint=option)
    return value


def load_public_key(path: Path) -> rsa.RSAPublicKey:
    """The seller's public key (§2.7): a PEM file, or its base64 body as pasted into the
    seller console (no BEGIN/END lines)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    hint = "--public-key"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint=hint) from None
    if b"PRIVATE KEY" in data:
        raise typer.BadParameter(
            f"{path} holds a private key; give the public one "
            "(openssl pkey -in seller.pem -pubout -out seller.pub.pem)",
            param_hint=hint,
        )
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            der = base64.b64decode(b"".join(data.split()), validate=True)
            key = serialization.load_der_public_key(der)
        except (ValueError, binascii.Error):
            raise typer.BadParameter(
                f"{path} is neither a PEM public key nor its base64 body", param_hint=hint
            ) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise typer.BadParameter(f"{path} is not an RSA key (§2.7)", param_hint=hint)
    return key


def _options(
    target: str, basic_key: str, kit_key: str, public_key: Path | None, app_id: str,
    sso_callback: str | None, probe_url: str | None, v1_key: str | None,
    order_ak: str | None, order_sk: str | None,
    host: str, port: int, auth_centre_url: str | None, time_limit: float, body_limit: int,
) -> Options:  # fmt: skip
    from identity.marketplace.orders import AccessKey
    from identity.simulator.conformance.session import Options

    if not basic_key.strip() or not kit_key.strip():
        raise typer.BadParameter("the access keys must not be empty", param_hint="--basic-key")
    if basic_key == kit_key:
        raise typer.BadParameter(
            "the basic and kit keys must differ: each interface type is bound to its own key "
            "(§0.3)",
            param_hint="--kit-key",
        )
    if probe_url and not sso_callback:
        raise typer.BadParameter(
            "a probe URL needs --sso-callback: the probes start at the callback",
            param_hint="--probe-url",
        )
    if bool(order_ak) != bool(order_sk):
        raise typer.BadParameter("give both or neither", param_hint="--order-ak/--order-sk")
    return Options(
        target=_url(target, "--target"),
        basic_key=basic_key,
        kit_key=kit_key,
        app_id=app_id,
        public_key=load_public_key(public_key) if public_key else None,
        sso_callback=_url(sso_callback, "--sso-callback") if sso_callback else None,
        probe_url=_url(probe_url, "--probe-url") if probe_url else None,
        v1_key=v1_key or None,
        order_key=AccessKey(order_ak, order_sk) if order_ak and order_sk else None,
        auth_centre_host=host,
        auth_centre_port=port,
        auth_centre_url=_url(auth_centre_url, "--auth-centre-url") if auth_centre_url else None,
        time_limit=time_limit,
        body_limit=body_limit,
    )


def conformance(
    target: Annotated[str, typer.Option(
        help="The endpoint's production address (§0.3): basic calls are POSTed to it, kit calls "
        "to it plus /produceAPI/v2/NAME", show_default=False)],
    basic_key: Annotated[str, typer.Option(
        envvar="IDENTITY_MARKETPLACE_BASIC_KEY", show_default=False,
        help="The access key bound to the basic interfaces")],
    kit_key: Annotated[str, typer.Option(
        envvar="IDENTITY_MARKETPLACE_KIT_KEY", show_default=False,
        help="The access key bound to the kit (联营SaaS同步) interfaces")],
    public_key: Annotated[Path | None, typer.Option(
        metavar="PEM", dir_okay=False, help="The seller's RSA public key (PEM, or its base64 "
        "body): clientSecret is encrypted with it. Without it, the cases that send an encrypted "
        "clientSecret and the sign-in probes are skipped")] = None,
    app_id: Annotated[str, typer.Option(
        help="The app's appId (应用ID), as in applicationSync and authSync")] = DEFAULT_APP_ID,
    sso_callback: Annotated[str | None, typer.Option(
        help="The app's registered callback (identity: BASE/sso/callback/APP_ID): the kit then "
        "serves the tenants' auth centre and probes who is let in")] = None,
    probe_url: Annotated[str | None, typer.Option(
        help="A page of the endpoint that answers 2xx only to a signed-in session (identity: "
        "BASE/sso/session): a probe counts as a sign-in when, with the cookies the callback "
        "set, it answers 2xx. Without it, any cookie a refusal does not also set counts")] = None,
    v1_key: Annotated[str | None, typer.Option(
        envvar="IDENTITY_MARKETPLACE_V1_KEY", show_default=False,
        help="The seller's V1 key: the legacy V1 calls are checked too")] = None,
    order_ak: Annotated[str | None, typer.Option(
        help="With --order-sk: the kit answers the query-order API for this key pair (the "
        "endpoint must ask the auth centre's address), and checks the order-details path")] = None,
    order_sk: Annotated[str | None, typer.Option(
        show_default=False, help="The secret of --order-ak")] = None,
    auth_centre_host: Annotated[str, typer.Option(
        help="Where the kit's auth centre and order API listen")] = "127.0.0.1",
    auth_centre_port: Annotated[int, typer.Option(
        min=0, max=65535, help="Their port (0: any free one)")] = 0,
    auth_centre_url: Annotated[str | None, typer.Option(
        help="Their address as the endpoint reaches it (sent as domainName; default "
        "http://HOST:PORT)")] = None,
    time_limit: Annotated[float, typer.Option(
        min=0.1, help="Seconds an answer may take (the marketplace waits 20, §0.3)")] = 20.0,
    body_limit: Annotated[int, typer.Option(
        min=1024, help="Bytes beyond which a body must be refused")] = 1024 * 1024,
    json_output: Annotated[bool, typer.Option(
        "--json", help="Print the results as JSON instead of the table")] = False,
    junit: Annotated[Path | None, typer.Option(
        metavar="FILE", dir_okay=False, help="Also write the results as JUnit XML")] = None,
) -> None:  # fmt: skip
    """Run the marketplace's callback cases against a KooGallery endpoint and judge the answers.

    Every basic and kit interface in every documented shape, debug calls, signatures right and
    wrong, limits, and (with --sso-callback) who the endpoint lets in after each change. Prints
    a table and a verdict in the marketplace's terms; exits 1 when a case failed.
    """
    options = _options(
        target, basic_key, kit_key, public_key, app_id, sso_callback, probe_url, v1_key, order_ak,
        order_sk, auth_centre_host, auth_centre_port, auth_centre_url, time_limit, body_limit,
    )  # fmt: skip
    from identity.simulator.conformance import report
    from identity.simulator.conformance.runner import run_all
    from identity.simulator.conformance.session import Status

    try:
        results = asyncio.run(run_all(options))
    except OSError as exc:  # the auth centre could not listen
        where = f"{auth_centre_host}:{auth_centre_port}"
        typer.echo(f"error: the auth centre cannot listen on {where}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    if json_output:
        typer.echo(json.dumps(report.as_json(results, target), ensure_ascii=False, indent=2))
    else:
        typer.echo(report.table(results, target))
    if junit is not None:
        try:
            report.write_junit(results, target, junit)
        except OSError as exc:
            typer.echo(f"error: cannot write {junit}: {exc.strerror}", err=True)
            raise typer.Exit(2) from None
    if any(r.status is Status.FAILED for r in results):
        raise typer.Exit(1)
