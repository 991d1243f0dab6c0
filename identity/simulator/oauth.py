"""The auth centre's memory: SSO sessions, authorization codes and tokens (contract §5.2, §5.3).

It fakes the world outside the ISV, so it lives in process memory and is gone on restart, like a
real IdP's state is out of the ISV's reach. Everything is timed by an injected clock (seconds) so
tests can expire codes and tokens without sleeping.

Where OneAccess's behaviour is not in the contract it follows Spring Security OAuth2, whose error
bodies the contract quotes (`Full authentication is required…`, `Bad client credentials`,
`Client ID mismatch`):
- the client is authenticated first (form `client_id`/`client_secret`, as §5.2 step 5 sends
  them, or HTTP Basic, RFC 6749 §2.3.1); a request that fails there touches no code;
- then the code is consumed, so it is burnt whatever fails next (redirect_uri, client);
- a refresh rotates: the old refresh token and the access token issued with it are removed;
- a refresh token presented by another client is `invalid_grant`.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from identity.simulator.scenario import MemberSpec, Scenario, TenantSpec, World, idp_user_id

SCOPE = "get_user_info"


class OAuthError(Exception):
    """An error answer of the token or userinfo endpoint: status plus the §5.5 body."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.body = {"error": error, "error_description": description}


def bad_client() -> OAuthError:
    return OAuthError(401, "invalid_client", "Bad client credentials")


def unauthorized() -> OAuthError:
    return OAuthError(
        401, "unauthorized", "Full authentication is required to access this resource"
    )


@dataclass(frozen=True)
class Grant:
    """Who a code or token speaks for, and to which client it was issued."""

    tenant_id: str
    user_name: str
    client_id: str


@dataclass(frozen=True)
class _Code:
    grant: Grant
    redirect_uri: str
    expires_at: float


@dataclass(frozen=True)
class _Token:
    grant: Grant
    expires_at: float
    partner: str
    """The refresh token of an access token, and the access token of a refresh token."""


@dataclass
class Lifetimes:
    code_seconds: float = 60
    access_token_seconds: int = 7200
    refresh_token_seconds: int = 30 * 86400


@dataclass
class Stats:
    grants: Counter[str] = field(default_factory=Counter)
    token_errors: int = 0
    userinfo: int = 0
    userinfo_errors: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "grants": dict(self.grants),
            "token_errors": self.token_errors,
            "userinfo": self.userinfo,
            "userinfo_errors": self.userinfo_errors,
        }


class Issuer:
    """Sessions, codes and tokens of one auth centre, serving every tenant of the scenario."""

    def __init__(self, world: World, lifetimes: Lifetimes, clock: Callable[[], float]) -> None:
        self.world = world
        self.lifetimes = lifetimes
        self.clock = clock
        self.stats = Stats()
        self._sessions: dict[str, tuple[str, str]] = {}
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _Token] = {}
        self._refresh: dict[str, _Token] = {}

    # --- SSO sessions (the `sim_sso` cookie) ------------------------------------------------

    def start_session(self, tenant_id: str, user_name: str) -> str:
        session_id = secrets.token_urlsafe(32)
        self._sessions[session_id] = (tenant_id, user_name)
        return session_id

    def session(self, session_id: str | None) -> tuple[str, str] | None:
        return self._sessions.get(session_id) if session_id else None

    def end_session(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)

    def end_member(self, tenant_id: str, user_name: str) -> None:
        """End every SSO session and token of one member (deleted, or a new password set)."""
        held = (tenant_id, user_name)
        self._sessions = {k: v for k, v in self._sessions.items() if v != held}
        self._codes = {
            k: v for k, v in self._codes.items() if (v.grant.tenant_id, v.grant.user_name) != held
        }
        self.revoke(tenant_id, user_name)

    @property
    def scenario(self) -> Scenario:
        return self.world.scenario

    # --- codes and tokens -------------------------------------------------------------------

    def issue_code(self, grant: Grant, redirect_uri: str) -> str:
        """A random, single-use code bound to client, redirect_uri and member (§5.2 step 3)."""
        now = self.clock()
        self._codes = {c: v for c, v in self._codes.items() if v.expires_at > now}
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Code(grant, redirect_uri, now + self.lifetimes.code_seconds)
        return code

    def authenticate_client(self, client_id: str | None, client_secret: str | None) -> None:
        tenants = self.scenario.tenants_of_client(client_id or "")
        if not tenants or not client_secret:
            raise bad_client()
        if not secrets.compare_digest(tenants[0].client_secret.encode(), client_secret.encode()):
            raise bad_client()

    def grant(self, client_id: str, form: Mapping[str, str]) -> dict[str, Any]:
        """The token endpoint's grant, after client authentication (§5.2 steps 5 and 8)."""
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError(400, "invalid_request", "Missing grant type")
        if grant_type == "authorization_code":
            return self.exchange_code(client_id, form.get("code"), form.get("redirect_uri"))
        if grant_type == "refresh_token":
            return self.refresh(client_id, form.get("refresh_token"))
        raise OAuthError(400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}")

    def exchange_code(
        self, client_id: str, code: str | None, redirect_uri: str | None
    ) -> dict[str, Any]:
        """authorization_code grant, after client authentication (§5.2 step 5)."""
        if not code:
            raise OAuthError(400, "invalid_request", "An authorization code must be supplied.")
        issued = self._codes.pop(code, None)  # burnt here, whatever fails next
        if issued is None or issued.expires_at <= self.clock():
            raise OAuthError(400, "invalid_grant", "Invalid authorization code")
        if redirect_uri is not None and redirect_uri != issued.redirect_uri:
            raise OAuthError(400, "invalid_grant", "Redirect URI mismatch.")
        if client_id != issued.grant.client_id:
            raise OAuthError(401, "invalid_client", "Client ID mismatch")
        return self._issue_tokens(issued.grant, "authorization_code")

    def refresh(self, client_id: str, refresh_token: str | None) -> dict[str, Any]:
        """refresh_token grant, after client authentication; rotates (§5.2 step 8)."""
        held = self._refresh.get(refresh_token or "")
        if held is None or held.expires_at <= self.clock():
            raise OAuthError(400, "invalid_grant", "Invalid refresh token")
        if held.grant.client_id != client_id:
            raise OAuthError(400, "invalid_grant", "Wrong client for this refresh token")
        del self._refresh[refresh_token or ""]
        self._access.pop(held.partner, None)
        return self._issue_tokens(held.grant, "refresh_token")

    def _issue_tokens(self, grant: Grant, grant_type: str) -> dict[str, Any]:
        now, life = self.clock(), self.lifetimes
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._access[access] = _Token(grant, now + life.access_token_seconds, refresh)
        self._refresh[refresh] = _Token(grant, now + life.refresh_token_seconds, access)
        self.stats.grants[grant_type] += 1
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": life.access_token_seconds,
            "scope": SCOPE,
            "refresh_token": refresh,
        }

    def bearer(self, authorization: str | None) -> Grant:
        """The grant behind `Authorization: Bearer …`, or the §5.2 step 6 401."""
        scheme, _, token = (authorization or "").partition(" ")
        held = self._access.get(token.strip()) if scheme.lower() == "bearer" else None
        if held is None or held.expires_at <= self.clock():
            raise unauthorized()
        return held.grant

    def revoke(self, tenant_id: str, user_name: str) -> int:
        """Drop every access and refresh token of one member (test hook); returns how many."""

        def keep(token: _Token) -> bool:
            return (token.grant.tenant_id, token.grant.user_name) != (tenant_id, user_name)

        before = len(self._access) + len(self._refresh)
        self._access = {k: v for k, v in self._access.items() if keep(v)}
        self._refresh = {k: v for k, v in self._refresh.items() if keep(v)}
        return before - len(self._access) - len(self._refresh)


def client_credentials(authorization: str | None, form: Mapping[str, str]) -> tuple[str, str]:
    """Form parameters (§5.2 step 5), else HTTP Basic (RFC 6749 §2.3.1)."""
    if "client_id" in form:
        return form.get("client_id", ""), form.get("client_secret", "")
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    client_id, _, secret = decoded.partition(":")
    return unquote_plus(client_id), unquote_plus(secret)


def userinfo(tenant: TenantSpec, member: MemberSpec) -> dict[str, Any]:
    """§5.2 step 6. `userName` is the account, as in authSync; `tenant` is the tenantId;
    `userId` repeats `id` (the contract says only "user id"); absent mobile/email are null."""
    user_id = idp_user_id(tenant.tenant_id, member.user_name)
    return {
        "id": user_id,
        "userId": user_id,
        "userName": member.user_name,
        "name": member.name,
        "email": member.email,
        "mobile": member.mobile,
        "role": member.role,
        "organizationName": tenant.department(member.org_code).org_name,
        "organizationCode": member.org_code,
        "projectName": tenant.name,
        "tenant": tenant.tenant_id,
    }


@dataclass
class Failures:
    """`/_sim/fail`: the next `count` token or userinfo calls answer `status` (upstream 5xx)."""

    status: int = 503
    remaining: int = 0

    def take(self) -> int | None:
        if self.remaining <= 0:
            return None
        self.remaining -= 1
        return self.status
