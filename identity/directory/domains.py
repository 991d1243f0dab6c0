"""The tenant's auth-centre address (`domainName`, contract §3.1, §5.2 step 4).

identity sends the tenant's OAuth client secret to `{domainName}/api/v1/oauth2/token`, so the
value decides where a secret goes. Only an origin is accepted: `https://host[:port]`, with no
path, query, fragment or user information (a `?x=` would turn the token URL into something
else; user information would be sent as Basic credentials). A value without a scheme is taken as
`https://` (§10 q13). Plain `http` is allowed only for loopback hosts, and only when
`IDENTITY_ALLOW_LOOPBACK_HTTP` is on (development, tests, `identity demo`); loopback hosts are
refused otherwise too, since no real auth centre lives on the service's own machine, and so are
private, link-local and unspecified addresses and numeric host spellings that resolvers read as
addresses. A DNS name is not resolved here: one that points at such an address is not caught.
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


_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)


def is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    address = _address(host)
    return address is not None and address.is_loopback


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The host as an IP address (an IPv4-mapped IPv6 address as its IPv4 one), or None."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _host_problem(host: str, allow_loopback: bool) -> str | None:
    """Why the host cannot be an auth centre's, or None. Resolvers read `127.1`,
    `2130706433` or `0x7f.1` as 127.0.0.1, so a name whose last label is numeric must be a
    plain dotted IPv4 address; and an address must be a public one (no loopback, unspecified,
    link-local or private address is a tenant's auth centre), loopback aside in development."""
    address = _address(host)
    if address is None:
        if not _HOST.fullmatch(host) or _NUMERIC_LABEL.fullmatch(host.rstrip(".").split(".")[-1]):
            return "has no valid host name"
        if host.lower().rstrip(".") == "localhost" and not allow_loopback:
            return "names a loopback host, which is allowed only in development"
        return None
    if address.is_loopback:
        return None if allow_loopback else "names a loopback host, allowed only in development"
    if not address.is_global:
        return "names a private, link-local or unspecified address"
    return None


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
    problem = _host_problem(host, allow_loopback_http)
    if problem:
        raise DomainRefused(problem)
    scheme = parts.scheme.lower()
    if scheme == "http" and not is_loopback(host):
        raise DomainRefused("must use https (http is allowed only for loopback in development)")
    shown = f"[{host}]" if ":" in host else host
    default = {"https": 443, "http": 80}[scheme]
    return f"{scheme}://{shown.lower()}" + (f":{port}" if port not in (None, default) else "")
