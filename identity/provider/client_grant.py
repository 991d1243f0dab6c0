"""The client-credentials grant (RFC 6749 §4.4), for an app's backend reading the directory.

A confidential client registered with `directory.read` asks the token endpoint for a token of
its own, for no member: an RFC 9068 access token whose `sub` and `client_id` are the client,
whose `aud` is the directory's SCIM base (`{issuer}/scim/v2`) and whose `scope` is what it was
granted. Nothing is stored: the token is checked at each use (`directory_client`), with one
query, against what can end it at once:

- the client removed, or its `directory.read` taken away;
- its secret rotated: the token carries `sv`, a digest of the secret's hash, so a token got
  with a leaked secret stops working when the secret is replaced;
- the key that signed it revoked.

It cannot be revoked alone (RFC 7009's `unsupported_token_type`): it lives the access-token
lifetime, or until one of those.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, exists, select

from identity.db import Database
from identity.models import OidcClient, SigningKey
from identity.pg_cache import cacheable
from identity.provider import clients, keys
from identity.provider.clients import DIRECTORY_SCOPE, EXTRA_SCOPES
from identity.provider.keys import Published
from identity.provider.tokens import sign

DIRECTORY_PATH = "/scim/v2"
MEMBER_SCOPES = ("openid", "profile", "email", "offline_access")


@dataclass(frozen=True)
class DirectoryClient:
    """An app's backend, authenticated by a live directory token."""

    client_id: str
    app_id: str


class ScopeRefused(ValueError):
    """`error` is the RFC 6749 §5.2 code: `invalid_scope` or `unauthorized_client`."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error


def granted_scope(allowed: list[str], requested: str | None) -> str:
    """The scope to grant: what was asked for (all of the client's own when nothing was), each
    one the client holds; else `ScopeRefused`."""
    asked = sorted(set((requested or "").split())) or sorted(allowed)
    if not asked:
        raise ScopeRefused(
            "unauthorized_client", "this client may not use the client_credentials grant"
        )
    refused = [s for s in asked if s not in allowed]
    if refused:
        why = (
            "is not granted to this client"
            if refused[0] in EXTRA_SCOPES
            else "names a member; this grant has none"
            if refused[0] in MEMBER_SCOPES
            else "is unknown"
        )
        raise ScopeRefused("invalid_scope", f"scope {refused[0]!r} {why}")
    return " ".join(asked)


async def granted(db: Database, client_id: str, requested: str | None) -> str:
    """`granted_scope` for the registered client."""
    async with db.single_read() as conn:
        registered = await clients.get(conn, client_id)
    return granted_scope(list(registered.scopes or []) if registered else [], requested)


def response(
    published: Published, issuer: str, client: clients.Credentials, scope: str, lifetime: int
) -> dict[str, Any]:
    """The token endpoint's answer: an access token, no refresh token, no ID token."""
    sv = secret_version(client.secret_hash)
    token = client_token(published, issuer, client.client_id, scope, sv, lifetime)
    return {"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": scope}


def introspected(claims: dict[str, Any]) -> dict[str, Any]:
    """RFC 7662's answer for a live directory token, to its own client."""
    keep = ("sub", "client_id", "scope", "exp", "iat", "iss", "aud", "jti")
    return {"active": True, "token_type": "access_token", **{k: claims[k] for k in keep}}


def secret_version(secret_hash: str | None) -> str:
    """What ties a token to the secret it was got with (never the secret, nor its hash)."""
    return hashlib.sha256(f"sv:{secret_hash}".encode()).hexdigest()[:16]


def audience(issuer: str) -> str:
    return f"{issuer}{DIRECTORY_PATH}"


def client_token(
    published: Published, issuer: str, client_id: str, scope: str, sv: str, lifetime: int
) -> str:
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": client_id,
        "aud": audience(issuer),
        "client_id": client_id,
        "scope": scope,
        "jti": secrets.token_urlsafe(16),
        "sv": sv,
        "iat": now,
        "exp": now + lifetime,
    }
    return sign(published, "at+jwt", claims)


_LIVE = cacheable(
    select(
        OidcClient.app_id,
        OidcClient.scopes,
        OidcClient.secret_hash,
        exists()
        .where(SigningKey.kid == bindparam("kid"), SigningKey.revoked_at.is_(None))
        .label("key_in_force"),
    ).where(OidcClient.client_id == bindparam("client_id"))
)


def claims_of(published: Published, issuer: str, token: str) -> dict[str, Any] | None:
    """A directory token's claims when its signature, type, issuer, audience and expiry hold;
    what can end it is `live`'s to check."""
    decoded = keys.verified(published, token)
    if decoded is None or decoded.header.get("typ") != "at+jwt":
        return None
    claims = decoded.claims
    if claims.get("iss") != issuer or claims.get("aud") != audience(issuer):
        return None
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= time.time():
        return None
    if not isinstance(claims.get("client_id"), str) or "gid" in claims:
        return None
    return {**claims, "kid": decoded.header.get("kid")}


async def live(db: Database, claims: dict[str, Any]) -> DirectoryClient | None:
    """The client of a directory token whose client, secret, scope and key still hold: one
    query."""
    row = await db.read_one(_LIVE, {"client_id": claims["client_id"], "kid": str(claims["kid"])})
    if row is None or not row.key_in_force or DIRECTORY_SCOPE not in (row.scopes or []):
        return None
    if DIRECTORY_SCOPE not in str(claims.get("scope", "")).split():
        return None
    if claims.get("sv") != secret_version(row.secret_hash):
        return None
    return DirectoryClient(claims["client_id"], row.app_id)
