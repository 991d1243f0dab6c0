"""OIDC clients: the ISV's apps, each bound to one KooGallery app.

A confidential client's secret is 256 random bits, shown once and stored as its SHA-256 (a slow
password hash buys nothing for a secret nobody chose); a public client has none and must use
PKCE. Redirect URIs are compared exactly (OAuth 2.1), so they are checked when registered:
absolute, no fragment, https, or http on a loopback host (a developer's machine, RFC 8252).
Removing a client deletes its grants with it, so every token it was given stops being active.

A confidential client may also hold `directory.read`: it then reads its tenants' directory
(SCIM) with tokens of the client-credentials grant, and may register an `events_uri` for the
directory's change events, signed with a Standard Webhooks secret (`whsec_…`, 24 random bytes,
shown once, kept encrypted under the master key because signing needs it). A rotated events
secret keeps signing beside the new one for an overlap, so receivers can switch without a gap.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from identity.access import end_client
from identity.crypto import Cipher
from identity.db import Database
from identity.models import OidcClient
from identity.pg_cache import cacheable

DIRECTORY_SCOPE = "directory.read"
EXTRA_SCOPES = (DIRECTORY_SCOPE,)
"""What a client may be allowed beyond OpenID Connect's scopes."""
EVENTS_SECRET_BYTES = 24


class ClientError(ValueError):
    """A registration that cannot be accepted; the message says why."""


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_uri(uri: str, what: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ClientError(f"{what} {uri!r} must be an absolute https URL")
    if parts.fragment or "#" in uri:
        raise ClientError(f"{what} {uri!r} must not have a fragment")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ClientError(f"{what} {uri!r} must use https (http only on a loopback host)")
    if parts.username or parts.password:
        raise ClientError(f"{what} {uri!r} must not carry user information")
    return uri


@dataclass(frozen=True)
class Registration:
    app_id: str
    name: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    backchannel_logout_uri: str | None
    initiate_login_uri: str | None
    public: bool
    home_uri: str | None = None
    scopes: list[str] = field(default_factory=list)
    events_uri: str | None = None


def describe(client: OidcClient) -> dict[str, Any]:
    """The operator's view of a client: everything but the secret's hash."""
    return {
        "client_id": client.client_id,
        "app_id": client.app_id,
        "name": client.name,
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "initiate_login_uri": client.initiate_login_uri,
        "home_uri": client.home_uri,
        "public": client.public,
        "scopes": list(client.scopes or []),
        "events_uri": client.events_uri,
        "events_secret_rotating_until": (
            client.events_previous_until.isoformat() + "Z"
            if client.events_previous_until and client.events_previous_secret_enc
            else None
        ),
    }


@dataclass(frozen=True)
class Added:
    """A new client's id, and the secrets shown this once: its client secret (None for a public
    client) and its events secret (None without an events URI)."""

    client_id: str
    secret: str | None
    events_secret: str | None


def _checked(r: Registration) -> None:
    if not r.app_id or not r.name:
        raise ClientError("a client needs an app id and a name")
    unknown = sorted(set(r.scopes) - set(EXTRA_SCOPES))
    if unknown:
        raise ClientError(f"unknown scope {unknown[0]!r} (known: {', '.join(EXTRA_SCOPES)})")
    directory = DIRECTORY_SCOPE in r.scopes
    if directory and r.public:
        raise ClientError(f"{DIRECTORY_SCOPE} needs a confidential client (it has a secret)")
    if r.events_uri and not directory:
        raise ClientError(f"an events URI needs the {DIRECTORY_SCOPE} scope (events carry it)")
    if not r.redirect_uris and (not directory or r.initiate_login_uri):
        raise ClientError("a client needs at least one redirect URI")
    for uri in r.redirect_uris:
        check_uri(uri, "redirect URI")
    for uri in r.post_logout_redirect_uris:
        check_uri(uri, "post-logout redirect URI")
    for other in (r.backchannel_logout_uri, r.initiate_login_uri, r.home_uri, r.events_uri):
        if other:
            check_uri(other, "URI")


async def add(
    session: AsyncSession, registration: Registration, cipher: Cipher | None = None
) -> Added:
    """Register a client. An events URI needs `cipher`, which seals its events secret."""
    r = registration
    _checked(r)
    client_id = secrets.token_hex(16)  # never a leading '-', which a command line would misread
    secret = None if r.public else secrets.token_urlsafe(32)
    events_secret = new_events_secret() if r.events_uri else None
    if events_secret is not None and cipher is None:
        raise ClientError("an events URI needs the master key (IDENTITY_SECRET_KEY)")
    session.add(
        OidcClient(
            client_id=client_id,
            app_id=r.app_id,
            name=r.name,
            public=r.public,
            secret_hash=None if secret is None else hash_secret(secret),
            redirect_uris=list(r.redirect_uris),
            post_logout_redirect_uris=list(r.post_logout_redirect_uris),
            backchannel_logout_uri=r.backchannel_logout_uri,
            initiate_login_uri=r.initiate_login_uri,
            home_uri=r.home_uri,
            scopes=sorted(set(r.scopes)),
            events_uri=r.events_uri,
            events_secret_enc=(
                None
                if events_secret is None or cipher is None
                else cipher.encrypt(events_secret, _events_context(client_id))
            ),
        )
    )
    return Added(client_id, secret, events_secret)


def new_events_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and the base64 of random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(EVENTS_SECRET_BYTES)).decode()


def _events_context(client_id: str) -> tuple[str, ...]:
    return ("oidc_clients", client_id, "events_secret")


def events_secrets(cipher: Cipher, client: OidcClient, now: datetime) -> list[str]:
    """The secrets its events are signed with: the current one, then the previous one while its
    overlap lasts. Empty without an events URI."""
    found = []
    if client.events_secret_enc:
        found.append(cipher.decrypt(client.events_secret_enc, _events_context(client.client_id)))
    until = client.events_previous_until
    if client.events_previous_secret_enc and until is not None and now < until:
        previous = client.events_previous_secret_enc
        found.append(cipher.decrypt(previous, _events_context(client.client_id)))
    return found


async def rotate_events_secret(
    session: AsyncSession, cipher: Cipher, client_id: str, overlap: timedelta, now: datetime
) -> str | None:
    """A new events secret, returned to be shown once; the current one keeps signing beside it
    for `overlap` (zero: it stops at once). None when the client has no events URI."""
    client = await session.get(OidcClient, client_id, with_for_update=True)
    if client is None or not client.events_uri or not client.events_secret_enc:
        return None
    secret = new_events_secret()
    client.events_previous_secret_enc = client.events_secret_enc if overlap else None
    client.events_previous_until = now + overlap if overlap else None
    client.events_secret_enc = cipher.encrypt(secret, _events_context(client_id))
    return secret


async def all_clients(session: AsyncSession) -> list[OidcClient]:
    return list((await session.scalars(select(OidcClient).order_by(OidcClient.name))).all())


async def get(session: AsyncSession | AsyncConnection, client_id: str) -> OidcClient | None:
    if isinstance(session, AsyncSession):
        return await session.get(OidcClient, client_id)
    row = (
        await session.execute(select(OidcClient).where(OidcClient.client_id == client_id))
    ).one_or_none()
    return None if row is None else OidcClient(**dict(row._mapping))


async def remove(session: AsyncSession, client_id: str) -> bool:
    """The client, its grants and its undelivered back-channel logouts (`access.end_client`)."""
    return await end_client(session, client_id)


async def rotate_secret(session: AsyncSession, client_id: str) -> str | None:
    """A new secret for a confidential client (the old one stops working); None when there is
    no such client or it is public."""
    secret = secrets.token_urlsafe(32)
    result = await session.execute(
        update(OidcClient)
        .where(OidcClient.client_id == client_id, OidcClient.public.is_(False))
        .values(secret_hash=hash_secret(secret))
    )
    return secret if result.rowcount else None  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Credentials:
    """What authenticating a client needs, read with one prebuilt statement."""

    client_id: str
    public: bool
    secret_hash: str | None


_CREDENTIALS = cacheable(
    select(OidcClient.client_id, OidcClient.public, OidcClient.secret_hash).where(
        OidcClient.client_id == bindparam("client_id")
    )
)
"""Kept on PostgreSQL until `oidc_clients` changes (`identity.pg_cache`)."""


async def credentials(db: Database, client_id: str) -> Credentials | None:
    row = await db.read_one(_CREDENTIALS, {"client_id": client_id})
    return None if row is None else Credentials(row.client_id, row.public, row.secret_hash)


def secret_matches(client: Credentials, secret: str) -> bool:
    if client.secret_hash is None:
        return False
    return hmac.compare_digest(client.secret_hash.encode(), hash_secret(secret).encode())


def initiate_url(issuer: str, initiate: str, redirect_uris: list[str], login_hint: str) -> str:
    """Where a member starts signing in to a client that registered `initiate` (its
    `initiate_login_uri`, OIDC Core §4): with `iss`, `login_hint` (`userName@tenantCode`) and
    `target_link_uri` (the origin of its first redirect URI), so the app starts its own
    authorization request and finds the member signed in."""
    target = urlsplit(redirect_uris[0])
    query = {
        "iss": issuer,
        "login_hint": login_hint,
        "target_link_uri": f"{target.scheme}://{target.netloc}/",
    }
    return f"{initiate}{'&' if urlsplit(initiate).query else '?'}{urlencode(query)}"


_OF_APPS = select(
    OidcClient.app_id,
    OidcClient.name,
    OidcClient.initiate_login_uri,
    OidcClient.redirect_uris,
    OidcClient.home_uri,
).order_by(OidcClient.app_id, OidcClient.name, OidcClient.client_id)


async def sign_in_links(
    db: Database, issuer: str, tenant_code: str, user_name: str, app_ids: list[str]
) -> list[tuple[str, str, str | None]]:
    """Every client of `app_ids` (the apps the member may use, `eligibility.usable_apps`) as
    (app id, name, where the member starts signing in to it), for the signed-in page; the
    address is its `initiate_login_uri` (with the hints the app needs), else its home URI (the
    app's own page, where its members sign in as usual), else None."""
    if not app_ids:
        return []
    async with db.single_read() as conn:
        rows = (await conn.execute(_OF_APPS.where(OidcClient.app_id.in_(app_ids)))).all()
    hint = f"{user_name}@{tenant_code}"
    return [
        (app_id, name, initiate_url(issuer, initiate, uris, hint) if initiate else home)
        for app_id, name, initiate, uris, home in rows
    ]
