"""A signing KooGallery sender for tests: real signatures over real HTTP (or ASGI)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx2 as httpx

from identity.marketplace.signing import Kind, sign_body

SECRET_KEY = "test-master-key-0123456789abcdef"  # noqa: S105 - the tests' master key
BASIC_KEY = "basic-key-for-tests-0123456789"
KIT_KEY = "kit-key-for-tests-0123456789"


def now_ms() -> str:
    return str(int(time.time() * 1000))


def encode(body: dict[str, Any] | bytes) -> bytes:
    if isinstance(body, bytes):
        return body
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


class SignedCalls:
    def __init__(
        self, client: httpx.AsyncClient, basic_key: str = BASIC_KEY, kit_key: str = KIT_KEY
    ):
        self.client = client
        self.basic_key = basic_key
        self.kit_key = kit_key

    async def basic(self, body: dict[str, Any] | bytes, **signing: str | None) -> dict[str, Any]:
        """POST /koogallery signed in the query string (contract §2.1)."""
        raw, (sig, timestamp, nonce) = self._sign(Kind.BASIC, body, **signing)
        params = {"signature": sig, "timestamp": timestamp, "nonce": nonce}
        return await self._post("/koogallery", raw, params=params)

    async def kit(
        self, name: str, body: dict[str, Any] | bytes, **signing: str | None
    ) -> dict[str, Any]:
        """POST /koogallery/produceAPI/v2/{name} signed in headers (contract §2.2)."""
        raw, (sig, timestamp, nonce) = self._sign(Kind.KIT, body, **signing)
        headers = {"x-sign": sig, "x-timestamp": timestamp, "x-nonce": nonce}
        return await self._post(f"/koogallery/produceAPI/v2/{name}", raw, headers=headers)

    def _sign(
        self,
        kind: Kind,
        body: dict[str, Any] | bytes,
        *,
        key: str | None = None,
        nonce: str | None = None,
        timestamp: str | None = None,
        signature: str | None = None,
    ) -> tuple[bytes, tuple[str, str, str]]:
        """Sign like the marketplace; any of key, nonce, timestamp, signature may be forced."""
        raw = encode(body)
        nonce = nonce or uuid.uuid4().hex
        timestamp = timestamp or now_ms()
        default_key = self.basic_key if kind is Kind.BASIC else self.kit_key
        sig = signature or sign_body(kind, key or default_key, nonce, timestamp, raw)
        return raw, (sig, timestamp, nonce)

    async def _post(
        self,
        path: str,
        raw: bytes,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        response = await self.client.post(
            path,
            params=params,
            content=raw,
            headers={"content-type": "application/json", **(headers or {})},
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        return response.json()  # type: ignore[no-any-return]
