"""The tenant's auth-centre address (`domainName`, contract §3.1, §5.2 step 4).

identity sends the tenant's OAuth client secret to `{domainName}/api/v1/oauth2/token`, so the
value decides where a secret goes. Only an origin is accepted: `https://host[:port]`, with no
path, query, fragment or user information (a `?x=` would turn the token URL into something
else; user information would be sent as Basic credentials). A value without a scheme is taken as
`https://` (§10 q13). Plain `http` is allowed only for loopback hosts, and only when
`IDENTITY_ALLOW_LOOPBACK_HTTP` is on (development, tests, `identity demo`); loopback hosts are
refused otherwise too, since no real auth centre lives on the service's own machine.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")
_OTHER_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?![0-9])")
"""`javascript:…`, `mailto:…`: a scheme without `//` (a digit after the colon is a port)."""


class DomainRefused(ValueError):
    """The value is not an acceptable auth-centre origin; the message says why."""


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_ok(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOST.fullmatch(host))


def auth_centre_origin(domain_name: str, *, allow_loopback_http: bool) -> str:
    """The origin to store for `domainName`, or `DomainRefused` saying what is wrong."""
    value = domain_name.strip()
    if not value or any(c.isspace() or c == "\\" or ord(c) < 32 for c in value):
        raise DomainRefused("must be https://host[:port] without spaces or backslashes")
    if "://" not in value:
        if _OTHER_SCHEME.match(value):
            raise DomainRefused("has a scheme other than https; use https://host[:port]")
        value = "https://" + value
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("https", "http"):
        raise DomainRefused(f"scheme {parts.scheme!r} is not allowed; use https://host[:port]")
    if "@" in parts.netloc:
        raise DomainRefused("must not carry user information (user@host)")
    if parts.path not in ("", "/") or parts.query or parts.fragment or value.endswith(("?", "#")):
        raise DomainRefused("must be an origin, https://host[:port], without path, query or #")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise DomainRefused("has an invalid port")
    host = parts.hostname or ""
    if not _host_ok(host):
        raise DomainRefused("has no valid host name")
    loopback = is_loopback(host)
    if loopback and not allow_loopback_http:
        raise DomainRefused("names a loopback host, which is allowed only in development")
    if parts.scheme.lower() == "http" and not loopback:
        raise DomainRefused("must use https (http is allowed only for loopback in development)")
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme.lower()}://{shown.lower()}" + (f":{port}" if port is not None else "")
