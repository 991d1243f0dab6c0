"""The authorization endpoint's logic (OIDC Core §3.1.2, RFC 6749 §4.1, RFC 7636, RFC 9207).

An unknown client or a redirect URI that is not registered exactly is shown to the person as a
page, never redirected (the URI is not trusted yet); every other problem goes back to the app's
redirect URI with `error`, `state` and `iss`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

from sqlalchemy.ext.asyncio import AsyncConnection

from identity.db import utcnow
from identity.directory import eligibility
from identity.errors import IdentityError
from identity.models import OidcClient
from identity.provider import clients, grants, hints
from identity.provider.service import SCOPES, Provider, parameters
from identity.sessions import SignedIn
from identity.sso import admission
from identity.sso.refusals import Refusal
from identity.web import CONTROL

AUTHORIZE_PATH = "/oauth2/authorize"
DENIED_PATH = "/oauth2/denied"
REFUSED = "the member may not sign in to this app"
MAX_PARAMETER = 2048
S256_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
SECONDS = re.compile(r"[0-9]{1,10}")  # ASCII digits only: str.isdigit() also takes "²"
MAX_AGE_LIMIT = 2**31 - 1


class AuthorizePage(IdentityError):
    """An authorize or end-session request that must not redirect (unknown client, redirect URI
    not registered): shown as a page to the person (RFC 6749 §4.1.2.1)."""

    code = "invalid_request"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


@dataclass(frozen=True)
class Authorization:
    """A validated authorization request (OIDC Core §3.1.2.1)."""

    client: OidcClient
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str | None
    prompt: str | None
    max_age: int | None
    tenant_hint: str | None
    tenant_id: str | None
    """The tenant `tenant_hint` names, as /sso/login reads it; None when it names none."""
    hinted: Hinted | None
    """The member an `id_token_hint` names (OIDC Core §3.1.2.1)."""


@dataclass(frozen=True)
class Hinted:
    sub: str
    tenant_id: str


def _redirect(uri: str, params: dict[str, str | None]) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


async def parse(
    provider: Provider, pairs: list[tuple[str, str]]
) -> tuple[Authorization, tuple[str, str] | None]:
    """Check the request. A bad client or redirect URI is a page (`AuthorizePage`); any
    other problem, returned as (error, description), goes back to the redirect URI.

    A repeated parameter is refused (RFC 6749 §3.1): as a page when it is client_id or
    redirect_uri (which one was meant cannot be told), else back to the app, without `state`
    when `state` is the one repeated."""
    if any(max(len(n), len(v)) > MAX_PARAMETER or CONTROL.search(n + v) for n, v in pairs):
        raise AuthorizePage("a parameter is too long or holds a control character")
    params, repeated = parameters(pairs)
    for name in ("client_id", "redirect_uri"):
        if name in repeated:
            raise AuthorizePage(f"{name} is repeated")
    client_id, tenant_hint = params.get("client_id", ""), _tenant_hint(params)
    async with provider.db.single_read() as conn:
        client = await clients.get(conn, client_id) if len(client_id) <= 64 else None
        tenant_id = await _find_tenant(conn, tenant_hint) if client and tenant_hint else None
    if client is None:
        raise AuthorizePage("unknown client_id")
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in client.redirect_uris:
        raise AuthorizePage("redirect_uri is not registered for this client")
    hint = params.get("id_token_hint")
    hinted = await hints.id_token_claims(provider, hint) if hint else None
    request = Authorization(
        client=client,
        redirect_uri=redirect_uri,
        scope=" ".join(dict.fromkeys(params.get("scope", "").split())),
        state=None if "state" in repeated else params.get("state"),
        nonce=params.get("nonce"),
        code_challenge=params.get("code_challenge"),
        prompt=params.get("prompt"),
        max_age=_max_age(params.get("max_age")),
        tenant_hint=tenant_hint,
        tenant_id=tenant_id,
        hinted=Hinted(hinted["sub"], str(hinted.get("tenant_id"))) if hinted else None,
    )
    if repeated:
        return request, ("invalid_request", f"parameter {repeated[0]} is repeated")
    return request, _request_error(request, params)


def error_redirect(provider: Provider, request: Authorization, error: str, description: str) -> str:
    return _redirect(
        request.redirect_uri,
        {
            "error": error,
            "error_description": description,
            "state": request.state,
            "iss": provider.issuer,
        },
    )


async def issue_code(provider: Provider, request: Authorization, signed_in: SignedIn) -> str:
    """The redirect back to the app with a fresh code (RFC 6749 §4.1.2, RFC 9207 `iss`)."""
    async with provider.db.write() as conn:
        code = await grants.create(
            conn,
            sid=signed_in.sid,
            client_id=request.client.client_id,
            app_id=request.client.app_id,
            scope=request.scope,
            nonce=request.nonce,
            redirect_uri=request.redirect_uri,
            code_challenge=request.code_challenge,
            now=utcnow(),
        )
    return _redirect(
        request.redirect_uri, {"code": code, "state": request.state, "iss": provider.issuer}
    )


def _max_age(value: str | None) -> int | None:
    """Whole seconds (OIDC Core §3.1.2.1), at most `MAX_AGE_LIMIT`; None for anything else."""
    if value is None or not SECONDS.fullmatch(value) or int(value) > MAX_AGE_LIMIT:
        return None
    return int(value)


async def _find_tenant(conn: AsyncConnection, hint: str) -> str | None:
    """The one reading of a tenant hint, /sso/login's (`admission.find_tenant`): an exact id
    first, then a code, so a tenant whose code is another's id cannot answer for it."""
    try:
        return await admission.find_tenant(conn, hint)
    except Refusal:
        return None


def _tenant_hint(params: dict[str, str]) -> str | None:
    """`tenant` (id or code), else the code in `login_hint=account@tenantCode`."""
    if params.get("tenant"):
        return params["tenant"]
    hint = params.get("login_hint", "")
    return hint.rpartition("@")[2] or None if "@" in hint else None


def _request_error(request: Authorization, params: dict[str, str]) -> tuple[str, str] | None:
    """What is wrong with a request whose client and redirect URI are good: (error,
    description), sent back to the redirect URI; None when nothing is."""
    if params.get("response_type") != "code":
        return "unsupported_response_type", "only response_type=code is supported"
    scopes = request.scope.split()
    if "openid" not in scopes or any(s not in SCOPES for s in scopes):
        return "invalid_scope", f"scope must include openid, within {' '.join(SCOPES)}"
    method = params.get("code_challenge_method")
    if request.code_challenge is not None and method != "S256":
        return "invalid_request", "code_challenge_method must be S256"
    if request.code_challenge is not None and not S256_CHALLENGE.fullmatch(request.code_challenge):
        return "invalid_request", "code_challenge must be a base64url SHA-256 (43 characters)"
    if request.nonce is not None and len(request.nonce) > 255:
        return "invalid_request", "nonce is longer than 255 characters"
    if request.code_challenge is None and (method or request.client.public):
        return "invalid_request", "PKCE (code_challenge with S256) is required for this client"
    if request.prompt not in (None, "none", "login", "consent"):
        return "invalid_request", "prompt value not supported"
    if params.get("id_token_hint") and request.hinted is None:
        return "invalid_request", "id_token_hint is not an ID token of this provider in force"
    if "max_age" in params and request.max_age is None:
        return (
            "invalid_request",
            f"max_age must be a whole number of seconds, {MAX_AGE_LIMIT} at most",
        )
    return None


def fresh_enough(request: Authorization, signed_in: SignedIn) -> bool:
    """Whether the member's last sign-in satisfies the request: not when it asks for a new one
    (`prompt=login`) or the last one is older than `max_age` (OIDC Core §3.1.2.1)."""
    if request.prompt == "login":
        return False
    if request.max_age is None:
        return True
    return utcnow() - signed_in.authenticated_at <= timedelta(seconds=request.max_age)


def names_member(provider: Provider, request: Authorization, signed_in: SignedIn) -> bool:
    """Whether the session's member is the one the request names, when it names one: the
    tenant of the tenant hint, the member of the `id_token_hint` (OIDC Core §3.1.2.2)."""
    if request.tenant_hint and request.tenant_id != signed_in.tenant_id:
        return False
    return request.hinted is None or request.hinted.sub == _sub(provider, signed_in)


def _sub(provider: Provider, signed_in: SignedIn) -> str:
    return provider.subjects.sub(signed_in.tenant_id, signed_in.user_name)


async def answer(
    provider: Provider, request: Authorization, params: dict[str, str], raw_session_id: str | None
) -> str:
    """Where the browser goes. Signed in to the client's app as the member asked for, recently
    enough: back to the app with a code. Else, with prompt=none, back with an error; without,
    through the marketplace login for the tenant and the app, and then here again."""
    signed_in = await provider.sessions.current(raw_session_id, request.client.app_id)
    named = signed_in is not None and names_member(provider, request, signed_in)
    if signed_in is not None and named and fresh_enough(request, signed_in):
        return await issue_code(provider, request, signed_in)
    browser = signed_in or await provider.sessions.current(raw_session_id)
    if request.prompt == "none":
        return await _silent_refusal(provider, request, browser)
    hinted = request.hinted
    # The auth centre would sign in silently whoever it remembers: when that will not do (a
    # fresh sign-in asked for, or another member of its tenant hinted), its logout comes first,
    # so the person types a password again and `auth_time` tells the truth.
    again = named or (
        browser is not None
        and hinted is not None
        and hinted.tenant_id == browser.tenant_id
        and hinted.sub != _sub(provider, browser)
    )
    return await _through_login(provider, request, params, browser, log_out=again)


async def _silent_refusal(
    provider: Provider, request: Authorization, browser: SignedIn | None
) -> str:
    """prompt=none, and no code: `access_denied` when the browser's member is the one asked
    for and may not use the app (the refusal a login would show), else `login_required`."""
    if browser is not None and names_member(provider, request, browser):
        async with provider.db.single_read() as conn:
            usable = await eligibility.usable_apps(conn, browser.tenant_id, browser.user_name)
        if request.client.app_id not in usable:
            return error_redirect(provider, request, "access_denied", REFUSED)
    return error_redirect(provider, request, "login_required", "the member is not signed in")


def way_back(next_: str) -> str | None:
    """For a login refused on its way to `next_`: when that is an authorization request, the
    address that sends the browser back to the app with `access_denied` (RFC 6749 §4.1.2.1).
    It carries the request itself, checked again there like any authorization request, so the
    browser only ever goes to a redirect URI registered for the client."""
    parts = urlsplit(next_)
    if parts.scheme or parts.netloc or parts.path != AUTHORIZE_PATH or not parts.query:
        return None
    return f"{DENIED_PATH}?{parts.query}"


async def _through_login(
    provider: Provider,
    request: Authorization,
    params: dict[str, str],
    browser: SignedIn | None,
    *,
    log_out: bool,
) -> str:
    """`/sso/login` for the member's tenant and the client's app, then back here. Resumed with
    prompt=none: the login is fresh, and a member other than the one asked for must end in an
    error, not in another round (`prompt` and `max_age` go, the hints stay)."""
    tenant = (
        (request.hinted.tenant_id if request.hinted else None)
        or request.tenant_id
        or request.tenant_hint
        or (browser.tenant_id if browser else None)
    )
    resume = {k: v for k, v in params.items() if k not in ("prompt", "max_age")}
    resume["prompt"] = "none"
    login = {"app": request.client.app_id, "next": f"{AUTHORIZE_PATH}?{urlencode(resume)}"}
    if tenant:
        login["tenant"] = tenant
    login_url = f"/sso/login?{urlencode(login)}"
    if browser is None or not log_out:
        return login_url
    async with provider.db.single_read() as conn:
        back = provider.issuer + login_url
        return await admission.upstream_logout(conn, browser.tenant_id, back) or login_url
