"""What a member's browser holds and where it may be sent: the cookies, written in one place,
and the allow-list of addresses a login or logout may send it to.

Every cookie identity sets is HttpOnly, `SameSite=Lax` unless a form needs `Strict`, and
`Secure` under an https base URL (or when `IDENTITY_SESSION_COOKIE_SECURE` says so). Under an
https base URL the names carry the `__Host-` prefix, which browsers accept only with `Secure`,
`Path=/` and no `Domain` (RFC 6265bis §4.1.3.2; a cookie breaking a rule is dropped): no sibling
subdomain or plain-http page can set or shadow them. The Flow B login and local sign-in form
cookies therefore move from `Path=/sso` and `Path=/login` to `Path=/`. Under an http base URL
(development) the names stay plain.

No open redirects: `next` and `redirect_url` are either a relative path on this service or an
absolute URL whose origin is `IDENTITY_BASE_URL`'s or listed in
`IDENTITY_ALLOWED_REDIRECT_ORIGINS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from starlette.responses import Response


@dataclass(frozen=True)
class Cookies:
    """Names and scope of the session, Flow B login and local sign-in form cookies, and the one
    writer of all three."""

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

    def set(
        self,
        response: Response,
        name: str,
        value: str,
        *,
        path: str = "/",
        max_age: int | None = None,
        samesite: Literal["lax", "strict"] = "lax",
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=path,
            secure=self.secure,
            httponly=True,
            samesite=samesite,
        )

    def clear(self, response: Response, name: str, *, path: str = "/") -> None:
        """Browsers ignore a `__Host-` cookie, even an expired one, unless it is Secure."""
        response.delete_cookie(name, path=path, secure=self.secure, httponly=True, samesite="lax")

    def set_session(self, response: Response, raw_session_id: str) -> None:
        self.set(response, self.session, raw_session_id)

    def clear_session(self, response: Response) -> None:
        self.clear(response, self.session)


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
