"""Ending a session from an app (OpenID Connect RP-Initiated Logout 1.0), and landing a
platform-initiated login on an app (OIDC Core §4, third-party-initiated login).

RP-initiated logout: the app sends the browser to `end_session_endpoint` with the ID token it
holds (`id_token_hint`), a `post_logout_redirect_uri` registered for it, and `state`. When the
hint names this browser's session, identity ends it (its apps hear of it by back-channel
logout), then sends the browser through the tenant's auth centre logout (§5.2 step 9) so the
marketplace session ends too, and back to the app. Without a hint, or with one naming another
session, identity asks the member (the sign-out confirmation page) rather than guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from sqlalchemy import bindparam, select

from identity.access import end_sessions
from identity.models import OidcClient, Tenant
from identity.pg_cache import cacheable
from identity.provider import clients, hints
from identity.provider.authorize import AuthorizePage
from identity.provider.service import Provider
from identity.sessions import store as sessions
from identity.sso.upstream import LOGOUT_PATH, normalise_domain


@dataclass(frozen=True)
class Ended:
    """Where the browser goes next, and whether its session cookie is to be dropped."""

    location: str
    clear_cookie: bool


async def rp_initiated_logout(
    provider: Provider, params: dict[str, str], raw_session_id: str | None
) -> Ended:
    """End the browser's own session when the hint names it. A hint is no proof that the
    person at this browser is the member (an ID token can leak from a log or another app), so
    a hint naming another session ends nothing: a browser signed in as someone else is asked
    (the sign-out confirmation page), one signed in nowhere just goes back to the app."""
    hint = params.get("id_token_hint")
    if not hint:
        return Ended("/sso/logout", clear_cookie=False)
    claims = await hints.id_token_claims(provider, hint)
    if claims is None:
        raise AuthorizePage("id_token_hint is not an ID token of this provider in force")
    client_id = str(claims.get("aud"))
    if params.get("client_id") not in (None, client_id):
        raise AuthorizePage("client_id differs from the id_token_hint's audience")
    async with provider.db.single_read() as conn:
        client = await clients.get(conn, client_id)
    browser = await sessions.read_owner(provider.db, sessions.hash_id(raw_session_id or ""))
    if client is None:
        raise AuthorizePage("the id_token_hint names an unknown client")
    back = _post_logout_target(provider, client, params)
    sid = str(claims.get("sid", ""))
    if browser is None:
        return Ended(back, clear_cookie=bool(raw_session_id))
    if browser.sid != sid:
        return Ended("/sso/logout", clear_cookie=False)
    async with provider.db.write() as conn:
        domain = await conn.scalar(
            select(Tenant.domain_name).where(Tenant.tenant_id == browser.tenant_id)
        )
        await end_sessions(conn, [sid])
    if domain is None:
        return Ended(back, clear_cookie=True)
    query = urlencode({"redirect_url": back})
    return Ended(f"{normalise_domain(domain)}{LOGOUT_PATH}?{query}", clear_cookie=True)


def _post_logout_target(provider: Provider, client: OidcClient, params: dict[str, str]) -> str:
    uri = params.get("post_logout_redirect_uri")
    if not uri:
        return f"{provider.issuer}/sso/logged-out"
    if uri not in client.post_logout_redirect_uris:
        raise AuthorizePage("post_logout_redirect_uri is not registered for this client")
    state = params.get("state")
    if state is None:
        return uri
    return f"{uri}{'&' if urlsplit(uri).query else '?'}{urlencode({'state': state})}"


_LANDING = cacheable(  # kept on PostgreSQL until a client or a tenant changes
    select(OidcClient.initiate_login_uri, OidcClient.redirect_uris, Tenant.tenant_code)
    .join(Tenant, Tenant.tenant_id == bindparam("tenant_id"))
    .where(OidcClient.app_id == bindparam("app_id"), OidcClient.initiate_login_uri.is_not(None))
    .order_by(OidcClient.created_at)
    .limit(1)
)


async def landing(provider: Provider, app_id: str, tenant_id: str, user_name: str) -> str | None:
    """After a platform-initiated login to `app_id`: the app's `initiate_login_uri`, with `iss`,
    `login_hint` and `target_link_uri`, so the app starts its own authorization request and
    finds the member signed in. None when no client of that app registered one."""
    found = await provider.db.read_one(_LANDING, {"tenant_id": tenant_id, "app_id": app_id})
    if found is None:
        return None
    initiate, redirect_uris, tenant_code = found
    return clients.initiate_url(
        provider.issuer, initiate, redirect_uris, f"{user_name}@{tenant_code}"
    )
