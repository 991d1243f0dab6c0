"""Discovery and the JWKS, answered ahead of the app's routing when they are at hand.

Both are JSON documents that change rarely and that anyone may ask for as often as they like;
an app's library fetches them at start and again whenever it meets an unknown key. Through
FastAPI's and Starlette's layers (the error middlewares, the router, a `Request` and a
`Response`) each answer cost three times the work of sending its bytes. `Documents` sits just
inside the request observer, so these answers are still counted, timed, given a request id
and the security headers, and sends the bytes it already has, with headers built once per
document.

It is only a shortcut: whatever it does not have at hand (the JWKS when the keys are due to be
read or checked again, any method but GET and HEAD) goes on to the routes in
`identity.provider.routes`, which answer the same document the same way, or the error.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from identity.provider.service import KEYS_REFRESH_SECONDS, Provider

DISCOVERY_CACHE = "public, max-age=3600"
JWKS_CACHE = f"public, max-age={KEYS_REFRESH_SECONDS}"
"""As long as a replica may take to publish a rotated key, so a cached JWKS is at most that
much staler; a revoked key leaves every replica's answer within a second."""
JWKS_CHECKED_WITHIN = 1.0
"""A JWKS is answered from keys checked against revocation less than this many seconds ago, so
a flood of JWKS requests costs no query each."""


@dataclass(frozen=True)
class _Document:
    path: str  # what the request observer labels the metrics with, as a route's template
    cache_control: str
    at_hand: Callable[[Provider], bytes | None]


def _discovery(provider: Provider) -> bytes:
    return provider.discovery_json


def _jwks(provider: Provider) -> bytes | None:
    published = provider.keys_at_hand(JWKS_CHECKED_WITHIN)
    return None if published is None else published.jwks_json


DOCUMENTS = {
    document.path: document
    for document in (
        _Document("/.well-known/openid-configuration", DISCOVERY_CACHE, _discovery),
        _Document("/oauth2/jwks", JWKS_CACHE, _jwks),
    )
}


class Documents:
    """Pure ASGI: a GET or HEAD of a document at hand is answered here; anything else passes."""

    def __init__(self, app: ASGIApp, provider: Provider) -> None:
        self.app = app
        self.provider = provider

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        document = DOCUMENTS.get(scope["path"]) if scope["type"] == "http" else None
        body = None
        if document is not None and scope["method"] in ("GET", "HEAD"):
            body = document.at_hand(self.provider)
        if document is None or body is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = document
        etag = etag_of(body)
        if not_modified(etag, _if_none_match(scope)):
            await send(
                {
                    "type": "http.response.start",
                    "status": 304,
                    "headers": [*_validators(document.cache_control, etag)],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        headers = _headers(document.cache_control, etag, len(body))
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.body", "body": body})


def not_modified(etag: str, if_none_match: str) -> bool:
    """RFC 9110 §13.1.2, as weak comparison: the client holds this document already."""
    return etag in if_none_match or if_none_match.strip() == "*"


@functools.lru_cache(maxsize=8)
def etag_of(body: bytes) -> str:
    """Hashed once per document: the key set's and the discovery's bodies are the same
    objects from one request to the next (and a `bytes` keeps its own hash)."""
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def _if_none_match(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"if-none-match":
            return str(value.decode("latin-1"))
    return ""


@functools.lru_cache(maxsize=8)
def _validators(cache_control: str, etag: str) -> tuple[tuple[bytes, bytes], ...]:
    return ((b"cache-control", cache_control.encode()), (b"etag", etag.encode()))


@functools.lru_cache(maxsize=8)
def _headers(cache_control: str, etag: str, length: int) -> tuple[tuple[bytes, bytes], ...]:
    return (
        (b"content-type", b"application/json"),
        (b"content-length", str(length).encode()),
        *_validators(cache_control, etag),
    )
