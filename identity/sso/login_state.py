"""The Flow B login state bound to the browser.

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

from identity.crypto import Mac

LOGIN_TTL_SECONDS = 600


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
