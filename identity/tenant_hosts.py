"""Tenant hosts: `https://{tenantCode}.apps.example.com/` signs a member of that enterprise in
without the enterprise-code form (`IDENTITY_TENANT_DOMAIN=*.apps.example.com`).

A tenant host is only an entry point. Whatever a browser asks of it, it is sent to the base URL
(`IDENTITY_BASE_URL`), where the sign-in happens and the session lives:

- `/oauth2/authorize` goes to the base URL's, with `tenant` set to the host's tenant (the
  OpenID Provider has one issuer, the base URL, whatever host an app sent the browser to);
- any other page starts Flow B for the host's tenant (`/sso/login?tenant=…`), coming back to
  the same path on the base URL (`next`), or to the member's page for `/`.

Nothing is read from the database here: an unknown code is refused by `/sso/login` as a code
typed into its form would be, with the way out that page offers. Cookies stay host-only on the
base URL's host (no `Domain`): a tenant host never sets or sees one. Health probes answer on
any host; other methods than GET and HEAD are not for a tenant host (404).
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

PATTERN = re.compile(r"^\*((?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+)$")
"""`*.` and a host name of at least one label, lower case."""
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
PROBES = frozenset({"/healthz", "/readyz"})
AUTHORIZE = "/oauth2/authorize"


def suffix_of(pattern: str) -> str:
    """`.apps.example.com` for `*.apps.example.com`; ValueError for anything else."""
    found = PATTERN.match(pattern.strip().lower())
    if found is None or (found.group(1).count(".") < 2 and found.group(1) != ".localhost"):
        raise ValueError(
            "must be a wildcard of a domain of at least two labels, like *.apps.example.com "
            "(or *.localhost on one machine)"
        )
    return found.group(1)


class TenantHosts:
    """The ASGI wrapper that answers requests to tenant hosts; others go on to `app`."""

    def __init__(self, app: ASGIApp, pattern: str, base_url: str) -> None:
        self.app = app
        self.suffix = suffix_of(pattern)
        self.base = base_url.rstrip("/")
        self.base_host = (urlsplit(self.base).hostname or "").lower()

    def tenant_of(self, scope: Scope) -> str | None:
        """The tenant code a request's host names, or None for any other host."""
        host = next((value for name, value in scope["headers"] if name == b"host"), b"")
        name = host.decode("latin-1").lower().rsplit(":", 1)[0] if b"]" not in host else ""
        if name == self.base_host or not name.endswith(self.suffix):
            return None
        label = name[: -len(self.suffix)]
        return label if _LABEL.match(label) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        code = self.tenant_of(scope) if scope["type"] == "http" else None
        if code is None or scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _answer(send, 404, body=_NOT_HERE)
            return
        await _answer(send, 302, location=self.base + self.target(scope, code))

    def target(self, scope: Scope, code: str) -> str:
        """Where on the base URL a request to the tenant host `code` goes."""
        path = "/" + scope["path"].lstrip("/")  # `//x` would be another host's address
        query = scope["query_string"].decode("latin-1")
        if path == AUTHORIZE:
            pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "tenant"]
            return f"{AUTHORIZE}?{urlencode([*pairs, ('tenant', code)])}"
        asked = {"tenant": code}
        if path != "/":
            asked["next"] = path + (f"?{query}" if query else "")
        return f"/sso/login?{urlencode(asked)}"


_NOT_HERE = json.dumps(
    {"error": "not_found", "message": "a tenant host only sends browsers to sign in"}
).encode()


async def _answer(send: Send, status: int, *, location: str = "", body: bytes = b"") -> None:
    headers = [(b"cache-control", b"no-store"), (b"content-length", str(len(body)).encode())]
    if location:
        headers.append((b"location", location.encode("latin-1")))
    if body:
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
