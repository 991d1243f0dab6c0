"""What a session keeps of the browser that signed in: how (the marketplace or a local
password), the browser and platform in words, and the client address. The admin console shows
them so that an admin can tell a member's sessions apart.

Only what is shown is stored, never the user agent itself: it identifies a browser far more
closely than anyone needs to see, and an attacker chooses it. It is parsed with ua-parser (the
rules of `ua-parser-builtins`) into a short text, once per login, and the text of a user agent
seen before comes from a cache: a login is a measured hot path, a parse costs about half a
millisecond (a few at the first, while the rules load), and most logins come from the same few
browsers. What the parser takes from the string is the string's own text, so control
characters are dropped and every value is cut to its column.

The address is the one the rate limits count (`identity.sso.limits.address_key` takes the same
ASGI client): the connection's peer, or the `X-Forwarded-For` entry uvicorn picks when the peer
is in `FORWARDED_ALLOW_IPS`; only a valid IP address is kept, IPv4-mapped IPv6 as IPv4.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

Method = Literal["marketplace", "password"]
MAX_USER_AGENT = 512
"""Longer user agents are parsed by their first 512 characters (browsers send about 150;
parsing takes time in proportion to the length)."""
MAX_TEXT = 64
"""The `browser` and `platform` columns' length."""
CACHED_USER_AGENTS = 1024


@dataclass(frozen=True)
class Seen:
    """The sign-in's request as the browser sent it: its `User-Agent` header and the client
    address. Passed down to the session's opening, never stored as it is."""

    user_agent: str | None
    address: str | None


@dataclass(frozen=True)
class Device:
    """What the session row keeps (all of it shown by the admin console)."""

    method: Method
    browser: str | None
    """The browser and its major version: "Chrome 131", "Mobile Safari 17"."""
    platform: str | None
    """The operating system and its version: "Windows 10", "iOS 17.4", "Android 14"."""
    address: str | None


def device(method: Method, seen: Seen | None) -> Device:
    """The session's device for a sign-in by `method` from `seen` (None: not known)."""
    if seen is None:
        return Device(method, None, None, None)
    browser, platform = describe(seen.user_agent[:MAX_USER_AGENT]) if seen.user_agent else NONE
    return Device(method, browser, platform, address(seen.address))


NONE: tuple[str | None, str | None] = (None, None)


@lru_cache(maxsize=CACHED_USER_AGENTS)
def describe(user_agent: str) -> tuple[str | None, str | None]:
    """(browser, platform) in words, None for what the parser does not recognise."""
    from ua_parser import Domain, parser  # loads the rules at the first call, not at import

    found = parser(user_agent, Domain.USER_AGENT | Domain.OS)
    agent, system = found.user_agent, found.os
    browser = shown(agent.family, agent.major) if agent is not None else None
    platform = None
    if system is not None:
        version = system.major and ".".join(v for v in (system.major, system.minor) if v)
        platform = shown(system.family, version)
    return browser, platform


def load_rules() -> None:
    """Load ua-parser and its rules (a few tenths of a second, once per process), so that the
    first login does not wait for them: the app does this in a thread as it starts."""
    describe("Mozilla/5.0")


def shown(family: str, version: str | None) -> str | None:
    """A family and its version in the words a page shows ("Chrome 131"); None for what the
    parser did not recognise. Control and format characters are dropped, the text cut to the
    column."""
    if family == "Other":  # ua-parser's name for "not recognised"
        return None
    words = f"{family} {version}" if version else family
    kept = "".join(c for c in words if not unicodedata.category(c).startswith("C")).strip()
    return kept[:MAX_TEXT] or None


def address(host: str | None) -> str | None:
    """The client's address as text, or None when the ASGI client is not an IP address."""
    if not host:
        return None
    try:
        parsed = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return str(parsed)[:MAX_TEXT]
