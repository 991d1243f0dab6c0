"""A deliberately broken ISV for the conformance kit's tests: a reverse proxy in front of a real
identity that injects one flaw, and is otherwise identity itself, so that only the cases about
that flaw can fail.

`python -m tests.helpers.broken_isv FLAW UPSTREAM PORT [DELAY]` serves on 127.0.0.1:PORT,
forwarding every request to UPSTREAM (identity's base URL) and its answer back unchanged,
except:

- `wrong-signature`: accepts a wrong signature. Every basic and kit call is signed again with
  the right key (over its own nonce and timestamp) before it is forwarded.
- `new-instance-per-retry`: creates a second instance for a retried order. newInstance's
  orderLineId is made unique per businessId, so a retry or a concurrent duplicate is a new line.
- `older-sync-wins`: lets an older sync win. Each kit call's `timeStamp` and `currentSyncTime`
  become "now", then the call is signed again.
- `slow`: answers renewals slowly. A refreshInstance of scene RENEWAL whose expireTime has 17
  digits (the official example's, and the kit's renewal) is held DELAY seconds before it is
  forwarded.

and one quirk that is no flaw, which the kit must pass:

- `flash-cookie`: every answer sets a cookie, a refusal too, as many frameworks do (a flash
  message, a session saved on every request), and a refused sign-in is an error page
  answered 200.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from datetime import datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx2 as httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from identity.marketplace.signing import Kind, match, sign_body
from identity.simulator.wire import GMT8, encode_body
from tests.helpers.marketplace_client import BASIC_KEY, KIT_KEY

FLAWS = ("wrong-signature", "new-instance-per-retry", "older-sync-wins", "slow", "flash-cookie")
_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


class Call:
    """One request on its way through: its query, headers and body, each changeable."""

    def __init__(self, request: Request, body: bytes) -> None:
        self.path = request.url.path
        self.params = dict(request.query_params)
        self.headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        self.body = body
        self.kind = Kind.KIT if "/produceAPI/v2/" in self.path else Kind.BASIC

    def document(self) -> dict[str, Any] | None:
        try:
            parsed = json.loads(self.body)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None

    def _signed(self) -> tuple[str, str, str | None]:
        """(nonce, timestamp, signature) as the call carries them, "" when absent."""
        if self.kind is Kind.BASIC:
            given = (self.params.get(n) for n in ("nonce", "timestamp", "signature"))
        else:
            given = (self.headers.get(n) for n in ("x-nonce", "x-timestamp", "x-sign"))
        nonce, timestamp, signature = given
        return nonce or "", timestamp or "", signature

    @property
    def key(self) -> str:
        return BASIC_KEY if self.kind is Kind.BASIC else KIT_KEY

    def well_signed(self) -> bool:
        """Whether the call came with the right key's signature: a flaw that changes a call
        signs it again only then, or it would also accept wrong signatures."""
        nonce, timestamp, signature = self._signed()
        if not (nonce and timestamp and signature):
            return False
        return match(self.kind, [self.key], signature, nonce, timestamp, self.body) is not None

    def resign(self) -> None:
        """Sign the call again with the right key, over its own nonce and timestamp."""
        nonce, timestamp, _ = self._signed()
        if not (nonce and timestamp):
            return
        signature = sign_body(self.kind, self.key, nonce, timestamp, self.body)
        if self.kind is Kind.BASIC:
            self.params["signature"] = signature
        else:
            self.headers["x-sign"] = signature


def _wrong_signature(call: Call) -> None:
    call.resign()


def _new_instance_per_retry(call: Call) -> None:
    document = call.document()
    newinstance = document is not None and document.get("activity") == "newInstance"
    if call.kind is Kind.BASIC and document and newinstance and call.well_signed():
        business = str(document.get("businessId", ""))[-8:]
        document["orderLineId"] = f"{document.get('orderLineId', '')}~{business}"[:64]
        call.body = encode_body(document)
        call.resign()


def _older_sync_wins(call: Call) -> None:
    document = call.document()
    if call.kind is Kind.KIT and document and call.well_signed():
        now = datetime.now(GMT8)
        stamp = now.strftime("%Y%m%d%H%M%S") + f"{now.microsecond // 1000:03d}"
        for field in ("timeStamp", "currentSyncTime"):
            if field in document:
                document[field] = stamp
        call.body = encode_body(document)
        call.resign()


def _untouched(call: Call) -> None:
    return None


def _slow_activity(call: Call) -> bool:
    document = call.document() or {}
    renewal = document.get("activity") == "refreshInstance" and document.get("scene") == "RENEWAL"
    return renewal and len(str(document.get("expireTime", ""))) == 17


def create_proxy(flaw: str, upstream: str, delay: float = 0.0) -> Starlette:
    if flaw not in FLAWS:
        raise ValueError(f"flaw must be one of {', '.join(FLAWS)}")
    change: Callable[[Call], None] = {
        "wrong-signature": _wrong_signature,
        "new-instance-per-retry": _new_instance_per_retry,
        "older-sync-wins": _older_sync_wins,
    }.get(flaw, _untouched)
    # a jar that keeps nothing: one browser's session cookie must not go with the next request
    nothing_kept = CookieJar(DefaultCookiePolicy(allowed_domains=[]))
    client = httpx.AsyncClient(
        base_url=upstream, timeout=60, follow_redirects=False, cookies=nothing_kept
    )

    async def forward(request: Request) -> Response:
        call = Call(request, await request.body())
        marketplace = call.path.startswith("/koogallery") and request.method == "POST"
        if marketplace:
            change(call)
            if flaw == "slow" and _slow_activity(call):
                await asyncio.sleep(delay)
        answer = await client.request(
            request.method, call.path, params=call.params, headers=call.headers, content=call.body
        )
        headers = [(k, v) for k, v in answer.headers.multi_items() if k.lower() not in _HOP]
        status = answer.status_code
        if flaw == "flash-cookie" and call.path.startswith("/sso/callback/") and status >= 400:
            status = 200
        response = Response(answer.content, status_code=status)
        response.raw_headers = [(k.encode(), v.encode()) for k, v in headers]
        response.headers["content-length"] = str(len(answer.content))
        if flaw == "flash-cookie":
            response.set_cookie("flash", "visited", path="/", httponly=True)
        return response

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)])


def main() -> None:
    import uvicorn

    flaw, upstream, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    delay = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    app = create_proxy(flaw, upstream, delay)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
