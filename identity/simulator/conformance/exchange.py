"""The kit's side of the wire: calls signed as the marketplace signs them (or deliberately not),
sent to the endpoint under test, and its answers kept as they came, timed.

Unlike the simulator's sender (`wire.KooGallery`), nothing here raises for what the endpoint
answers: a refusal, a wrong status, a slow or missing answer is what a case looks at. The
production address is the target itself (§0.3): basic calls are POSTed to it, kit calls to it
plus `/produceAPI/v2/{name}` (§3.0); V1 basic calls are a GET of it and V1 kit calls a POST to
`/produceAPI/{name}` (§2.6, §3.6, §4.8).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx2 as httpx

from identity.marketplace import v1
from identity.marketplace.signing import Kind
from identity.simulator.v1_wire import v1_basic, v1_kit
from identity.simulator.wire import encode_body, sign_call

KIT_PATH = "/produceAPI/v2/{name}"
V1_KIT_PATH = "/produceAPI/{name}"


@dataclass(frozen=True)
class Reply:
    """One answer as it arrived (or why none did), and how long it took."""

    status: int | None
    headers: httpx.Headers = field(default_factory=httpx.Headers)
    content: bytes = b""
    seconds: float = 0.0
    error: str | None = None

    def document(self) -> dict[str, Any] | None:
        try:
            parsed = json.loads(self.content)
        except (ValueError, RecursionError):
            return None
        return parsed if isinstance(parsed, dict) else None

    @property
    def code(self) -> str | None:
        document = self.document()
        code = document.get("resultCode") if document else None
        return code if isinstance(code, str) else None

    def value(self, name: str) -> Any:
        document = self.document()
        return document.get(name) if document else None

    def summary(self) -> str:
        """What came back, in one short line: the code and message, or the HTTP status."""
        if self.error is not None:
            return self.error
        document = self.document()
        if self.status != 200 or document is None:
            kind = self.headers.get("content-type", "no Content-Type")
            return f"HTTP {self.status} ({kind.split(';')[0]})"
        text = f"{document.get('resultCode')} {str(document.get('resultMsg', ''))[:60]}".strip()
        if isinstance(document.get("instanceId"), str):
            text += f", instanceId {document['instanceId'][:64]}"
        return text


@dataclass(frozen=True)
class Request:
    """A prepared call, kept so that it can be sent again unchanged (a replay)."""

    interface: str
    method: str
    url: str
    content: bytes = b""
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Signing:
    """How a call is signed: by default as the marketplace does; each field breaks one rule."""

    key: str | None = None
    """Another key than the interface type's own (a wrong or swapped key)."""
    formula: Kind | None = None
    """The other interface type's formula (§2.1 vs §2.2)."""
    upper: bool = False
    """The signature in upper-case hex, as the docs' examples (§2.1)."""
    timestamp: str | None = None
    drop: tuple[str, ...] = ()
    """Leave out "signature", "timestamp" or "nonce"."""


def utc_stamp() -> str:
    """V1's `timeStamp`: UTC `yyyyMMddHHmmssSSS` (§2.6)."""
    now = datetime.now(UTC)
    return now.strftime("%Y%m%d%H%M%S") + f"{now.microsecond // 1000:03d}"


class Line:
    """Calls to one endpoint with the seller's keys; every answer waited for `time_limit` s."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        target: str,
        *,
        basic_key: str,
        kit_key: str,
        v1_key: str | None,
        time_limit: float,
    ) -> None:
        self.client = client
        self.target = target
        self.keys = {Kind.BASIC: basic_key, Kind.KIT: kit_key}
        self.v1_key = v1_key
        self.time_limit = time_limit

    def basic_request(self, body: dict[str, Any] | bytes, signing: Signing = Signing()) -> Request:
        """POST {target}?signature&timestamp&nonce (§2.1)."""
        signature, timestamp, nonce, raw = self._signed(Kind.BASIC, body, signing)
        query = {"signature": signature, "timestamp": timestamp, "nonce": nonce}
        params = {k: v for k, v in query.items() if k not in signing.drop}
        activity = body.get("activity") if isinstance(body, dict) else None
        return Request(str(activity or "basic"), "POST", self.target, raw, params=params)

    def kit_request(
        self, name: str, body: dict[str, Any] | bytes, signing: Signing = Signing()
    ) -> Request:
        """POST {target}/produceAPI/v2/{name} with x-sign, x-timestamp, x-nonce (§2.2)."""
        signature, timestamp, nonce, raw = self._signed(Kind.KIT, body, signing)
        named = {"signature": signature, "timestamp": timestamp, "nonce": nonce}
        wire = {"signature": "x-sign", "timestamp": "x-timestamp", "nonce": "x-nonce"}
        headers = {wire[k]: v for k, v in named.items() if k not in signing.drop}
        url = self.target.rstrip("/") + KIT_PATH.format(name=name)
        return Request(name, "POST", url, raw, headers=headers)

    def _signed(
        self, kind: Kind, body: dict[str, Any] | bytes, signing: Signing
    ) -> tuple[str, str, str, bytes]:
        key = signing.key or self.keys[kind]
        signed = sign_call(signing.formula or kind, key, body, timestamp=signing.timestamp)
        signature = signed.signature.upper() if signing.upper else signed.signature
        return signature, signed.timestamp, signed.nonce, signed.raw

    async def basic(self, body: dict[str, Any] | bytes, signing: Signing = Signing()) -> Reply:
        return await self.send(self.basic_request(body, signing))

    async def kit(
        self, name: str, body: dict[str, Any] | bytes, signing: Signing = Signing()
    ) -> Reply:
        return await self.send(self.kit_request(name, body, signing))

    async def v1_basic(self, body: dict[str, Any], key: str | None = None) -> Reply:
        """A V2 basic body as V1's signed GET (§2.6, §4.8)."""
        params = {**v1_basic(body), "timeStamp": utc_stamp()}
        text = v1.signed_text(params, skip_blank=False)
        params["authToken"] = v1.auth_token(key or self._v1(), params["timeStamp"], text)
        interface = f"V1 {params['activity']}"
        return await self.send(Request(interface, "GET", self.target, params=params))

    async def v1_kit(self, name: str, body: dict[str, Any], key: str | None = None) -> Reply:
        """A V2 kit body in V1's shapes, POSTed with the authToken header (§2.6, §3.6)."""
        shaped = {**v1_kit(name, body), "timeStamp": utc_stamp()}
        text = v1.signed_text(shaped, skip_blank=True)
        token = v1.auth_token(key or self._v1(), shaped["timeStamp"], text)
        raw = encode_body(shaped)
        url = self.target.rstrip("/") + V1_KIT_PATH.format(name=name)
        return await self.send(
            Request(f"V1 {name}", "POST", url, raw, headers={"authToken": token})
        )

    def _v1(self) -> str:
        if not self.v1_key:
            raise RuntimeError("a V1 case ran without --v1-key")  # the runner skips them
        return self.v1_key

    async def send(self, request: Request) -> Reply:
        headers = dict(request.headers)
        if request.method == "POST":
            headers.setdefault("content-type", "application/json")
        started = time.perf_counter()
        try:
            response = await self.client.request(
                request.method,
                request.url,
                params=request.params or None,
                content=request.content or None,
                headers=headers,
                timeout=self.time_limit,
            )
        except httpx.TimeoutException:
            limit = f"{self.time_limit:g}"
            return Reply(
                None, seconds=time.perf_counter() - started, error=f"no answer in {limit} s"
            )
        except httpx.HTTPError as exc:
            elapsed = time.perf_counter() - started
            return Reply(None, seconds=elapsed, error=f"no answer: {type(exc).__name__} {exc}")
        elapsed = time.perf_counter() - started
        return Reply(response.status_code, response.headers, response.content, elapsed)
