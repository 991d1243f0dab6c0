"""Where a browser may be sent, and the Flow B login state bound to the browser.

No open redirects: `next` and `redirect_url` are either a relative path on this service or an
absolute URL whose origin is `IDENTITY_BASE_URL`'s or listed in
`IDENTITY_ALLOWED_REDIRECT_ORIGINS`.

Flow B's `state` (contract §5.3) travels twice: in the authorize URL, and in an HttpOnly cookie
MAC'd under a key derived from the master key, together with the tenant, app, `next` and an
expiry. The callback accepts the `state` only if the cookie in the same browser carries it, so a
code started elsewhere cannot be planted (login CSRF). Nothing is stored server-side, so any
replica can finish a login another one started.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from identity.crypto import Mac

LOGIN_TTL_SECONDS = 600


@dataclass(frozen=True)
class Cookies:
    """Names and scope of the session, Flow B login and local sign-in form cookies.

    Under an https base URL all three carry the `__Host-` prefix, which browsers accept only
    with `Secure`, `Path=/` and no `Domain` (RFC 6265bis §4.1.3.2; a cookie breaking a rule is
    dropped): no sibling subdomain or plain-http page can set or shadow them. The login and
    form cookies therefore move from `Path=/sso` and `Path=/login` to `Path=/`. Under an http
    base URL (development) the names stay plain and `Secure` follows the setting."""

    session: str
    login: str
    login_path: str
    form: str
    form_path: str
    secure: bool

    @classmethod
    def for_service(cls, base_url: str, secure: bool) -> Cookies:
        if urlsplit(base_url).scheme.lower() == "https":
            host = "__Host-identity_"
            return cls(f"{host}session", f"{host}login", "/", f"{host}form", "/", True)
        return cls("identity_session", "identity_login", "/sso", "identity_form", "/login", secure)


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def allowed(target: str, allowed_origins: set[str]) -> bool:
    """A relative path (`/x`, never `//host` or `/\\host`), or an allowed http(s) origin."""
    if any(c in target for c in "\r\n\t\\") or not target:
        return False
    if target.startswith("/"):
        return not target.startswith("//")
    parts = urlsplit(target)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return False
    return origin(target) in allowed_origins


@dataclass(frozen=True)
class LoginState:
    state: str
    tenant_id: str
    app_id: str
    next: str
    expires: int


def seal(mac: Mac, login: LoginState) -> str:
    payload = base64.urlsafe_b64encode(
        json.dumps([login.state, login.tenant_id, login.app_id, login.next, login.expires]).encode()
    ).decode()
    return f"{payload}.{mac.sign(payload)}"


def unseal(mac: Mac, cookie: str | None) -> LoginState | None:
    """The login state from the cookie, or None when it is absent, forged or expired."""
    if not cookie or "." not in cookie:
        return None
    payload, tag = cookie.rsplit(".", 1)
    if not mac.verify(payload, tag):
        return None
    try:
        state, tenant_id, app_id, next_, expires = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, TypeError):
        return None
    if not isinstance(expires, int) or expires < time.time():
        return None
    return LoginState(str(state), str(tenant_id), str(app_id), str(next_), expires)
