"""Discovery and the JWKS, answered ahead of the whole stack when they are at hand.

Both are JSON documents that change rarely and that anyone may ask for as often as they like;
an app's library fetches them at start and again whenever it meets an unknown key. Through the
app's layers (the request observer's log context, FastAPI's and Starlette's error middlewares,
the router, a `Request` and a `Response`) each answer cost several times the work of sending
its bytes. `Documents` is the outermost layer: it sends the bytes it already has with headers
prepared once per document, the security headers among them, and does for the request what
the request observer does (a request id, answered as `X-Request-ID`; the HTTP metrics under the
route's template). Nothing here logs, so no log context is bound.

It is only a shortcut: whatever it does not have at hand (the JWKS when the keys are due to be
read or checked again, any method but GET and HEAD) goes on through the stack to the routes in
`identity.provider.routes`, which answer the same document the same way, or the error. A test
compares the two answers header by header.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from identity.headers import completed
from identity.observability import Metrics, request_id
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
    path: str  # also the route template its metrics are labelled with
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
    """Pure ASGI, outermost: a GET or HEAD of a document at hand is answered here; anything
    else passes to `app`."""

    def __init__(
        self,
        app: ASGIApp,
        provider: Provider,
        metrics: Metrics,
        security_headers: Sequence[tuple[bytes, bytes]],
    ) -> None:
        self.app, self.provider, self.metrics = app, provider, metrics
        self.security_headers = security_headers
        self._prepared: dict[str, _Prepared] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        document = DOCUMENTS.get(scope["path"]) if scope["type"] == "http" else None
        body = None
        if document is not None and scope["method"] in ("GET", "HEAD"):
            body = document.at_hand(self.provider)
        if document is None or body is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        prepared = self._prepare(document, body)
        rid = (b"x-request-id", request_id(scope["headers"]).encode())
        if not_modified(prepared.etag, _if_none_match(scope)):
            status, headers, body = 304, prepared.not_modified, b""
        else:
            status, headers = 200, prepared.ok
        await send({"type": "http.response.start", "status": status, "headers": [*headers, rid]})
        await send({"type": "http.response.body", "body": body})
        self.metrics.answered(document.path, scope["method"], status, started)

    def _prepare(self, document: _Document, body: bytes) -> _Prepared:
        """The answers' headers for this body, built when the body is new (a key rotated)."""
        prepared = self._prepared.get(document.path)
        if prepared is None or prepared.body is not body:
            etag = etag_of(body)
            validators = [
                (b"cache-control", document.cache_control.encode()),
                (b"etag", etag.encode()),
            ]
            full = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *validators,
            ]
            prepared = self._prepared[document.path] = _Prepared(
                body=body,
                etag=etag,
                ok=tuple(completed(full, self.security_headers)),
                not_modified=tuple(completed(validators, self.security_headers)),
            )
        return prepared


@dataclass(frozen=True)
class _Prepared:
    body: bytes
    etag: str
    ok: tuple[tuple[bytes, bytes], ...]
    not_modified: tuple[tuple[bytes, bytes], ...]


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
