"""Security headers on every response, set once for the whole app.

Pages are HTML rendered from our templates; everything else is JSON. The policy:

- `Content-Security-Policy: default-src 'self'` (the pages' one stylesheet is served from
  `/static/`; no inline style or script is allowed, so nothing injected could run),
  `base-uri 'none'` and `frame-ancestors 'none'` (no page may be framed: a framed sign-out
  button could be clicked through an overlay). No `form-action`: the enterprise form
  GETs `/sso/login`, which redirects to the tenant's auth centre, and logout redirects there
  too; Chromium applies `form-action` to redirects after a submission, and the auth centres are
  every tenant's own origin, so the only value that would not break login is one that allows
  any origin, which protects nothing.
- `X-Frame-Options: DENY` for browsers without `frame-ancestors`; `X-Content-Type-Options:
  nosniff`.
- `Referrer-Policy: same-origin`: no URL of ours (codes and states included) is ever sent to
  another site. Not `no-referrer`: under it browsers send `Origin: null` with a page's own
  form POST (Fetch, "serializing a request origin"), and logout refuses a foreign `Origin`.
- `Strict-Transport-Security: max-age=31536000` when `IDENTITY_BASE_URL` is https; without
  `includeSubDomains`, since the ISV's other hosts under the same name are not ours to commit.

A header a route sets itself is kept. A route's own Content-Security-Policy keeps its directives
and gains ours for the directives it does not name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = b"content-security-policy"


CONTENT_SECURITY_POLICY = "default-src 'self'; base-uri 'none'; frame-ancestors 'none'"


def security_headers(base_url: str) -> list[tuple[bytes, bytes]]:
    headers = [
        (CSP, CONTENT_SECURITY_POLICY.encode()),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
    ]
    if base_url.lower().startswith("https://"):
        headers.append((b"strict-transport-security", b"max-age=31536000"))
    return headers


def merge_policies(own: bytes, ours: bytes) -> bytes:
    """The route's policy, plus each of our directives it does not name."""
    named = {d.split()[0].lower() for d in own.decode("latin-1").split(";") if d.strip()}
    extra = [
        d.strip()
        for d in ours.decode("latin-1").split(";")
        if d.strip() and d.split()[0].lower() not in named
    ]
    return "; ".join([own.decode("latin-1").strip().rstrip(";"), *extra]).encode("latin-1")


class SecurityHeaders:
    """Pure ASGI, outermost: it sees every response, the error handler's 500 included."""

    def __init__(self, app: ASGIApp, headers: Sequence[tuple[bytes, bytes]]) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = completed(message.get("headers", ()), self.headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def completed(
    headers: Iterable[tuple[bytes, bytes]], ours: Sequence[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """A response's headers with each of `ours` it does not set, and its policy merged."""
    result = list(headers)
    present = {name.lower(): index for index, (name, _) in enumerate(result)}
    for name, value in ours:
        if name not in present:
            result.append((name, value))
        elif name == CSP:
            own_name, own = result[present[name]]
            result[present[name]] = (own_name, merge_policies(own, value))
    return result
