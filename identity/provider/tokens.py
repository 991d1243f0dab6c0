"""The provider's JWTs (joserfc): ID tokens (OIDC Core §2), access tokens (RFC 9068) and
logout tokens (Back-Channel Logout 1.0 §2.4), and the member's `sub`.

`sub` is a keyed hash of (tenant, user name) under a key derived from the master key: stable
across logins, clients and restarts, different for every member, and it reveals neither the
tenant nor the user name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from joserfc import jwt

from identity.crypto import derive_key
from identity.provider.keys import Published

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_SECONDS = 120


class Subjects:
    def __init__(self, master_key: str) -> None:
        self._key = derive_key(master_key, "identity/oidc/subject/v1")

    def sub(self, tenant_id: str, user_name: str) -> str:
        message = len(tenant_id).to_bytes(4, "big") + tenant_id.encode() + user_name.encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()[:20]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class Member:
    """Who a token speaks for, as the session's app admission read them."""

    sub: str
    sid: str
    tenant_id: str
    tenant_code: str
    user_name: str
    name: str
    role: str
    org_code: str
    email: str | None
    auth_time: int

    def claims(self, scope: set[str]) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "sub": self.sub,
            "tenant_id": self.tenant_id,
            "tenant_code": self.tenant_code,
            "preferred_username": self.user_name,
            "name": self.name,
            "role": self.role,
            "org_code": self.org_code,
        }
        if "email" in scope and self.email:
            claims["email"] = self.email
        return claims


def sign(keys: Published, typ: str, claims: dict[str, Any]) -> str:
    """A JWT of ours, signed by the key in use, `typ` in its header."""
    header = {"alg": keys.signing_alg, "kid": keys.signing_kid, "typ": typ}
    return jwt.encode(header, claims, keys.signing_key, algorithms=[keys.signing_alg])


@dataclass(frozen=True)
class Issue:
    """What one token response is about."""

    issuer: str
    client_id: str
    grant_id: str
    scope: str
    lifetime: int
    nonce: str | None = None


def id_token(keys: Published, issue: Issue, member: Member) -> str:
    now = int(time.time())
    claims = {
        **member.claims(set(issue.scope.split())),
        "iss": issue.issuer,
        "aud": issue.client_id,
        "azp": issue.client_id,
        "iat": now,
        "exp": now + issue.lifetime,
        "auth_time": member.auth_time,
        "sid": member.sid,
    }
    if issue.nonce:
        claims["nonce"] = issue.nonce
    return sign(keys, "JWT", claims)


def access_token(keys: Published, issue: Issue, member: Member) -> str:
    """RFC 9068: `typ: at+jwt`, the client as audience; `gid` names the grant it came from, so
    revoking the grant (or ending its session) makes the token inactive at once."""
    now = int(time.time())
    claims = {
        **member.claims(set(issue.scope.split())),
        "iss": issue.issuer,
        "aud": issue.client_id,
        "client_id": issue.client_id,
        "scope": issue.scope,
        "jti": secrets.token_urlsafe(16),
        "sid": member.sid,
        "gid": issue.grant_id,
        "iat": now,
        "exp": now + issue.lifetime,
        "auth_time": member.auth_time,
    }
    return sign(keys, "at+jwt", claims)


def logout_token(keys: Published, issuer: str, client_id: str, sid: str, sub: str) -> str:
    """A fresh `jti` each time: each delivery attempt is a new token."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_SECONDS,
        "jti": secrets.token_urlsafe(16),
        "sid": sid,
        "sub": sub,
        "events": {LOGOUT_EVENT: {}},
    }
    return sign(keys, "logout+jwt", claims)
