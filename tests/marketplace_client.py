"""A signing KooGallery sender for tests: real signatures over real HTTP (or ASGI)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx2 as httpx

from identity.marketplace.signing import Kind, sign_body

BASIC_KEY = "basic-key-for-tests-0123456789"
KIT_KEY = "kit-key-for-tests-0123456789"


def now_ms() -> str:
    return str(int(time.time() * 1000))


def encode(body: dict[str, Any] | bytes) -> bytes:
    if isinstance(body, bytes):
        return body
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


class Sender:
    def __init__(
        self, client: httpx.AsyncClient, basic_key: str = BASIC_KEY, kit_key: str = KIT_KEY
    ):
        self.client = client
        self.basic_key = basic_key
        self.kit_key = kit_key

    async def basic(
        self,
        body: dict[str, Any] | bytes,
        *,
        key: str | None = None,
        nonce: str | None = None,
        timestamp: str | None = None,
        signature: str | None = None,
    ) -> dict[str, Any]:
        raw = encode(body)
        nonce = nonce or uuid.uuid4().hex
        timestamp = timestamp or now_ms()
        sig = signature or sign_body(Kind.BASIC, key or self.basic_key, nonce, timestamp, raw)
        response = await self.client.post(
            "/koogallery",
            params={"signature": sig, "timestamp": timestamp, "nonce": nonce},
            content=raw,
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def kit(
        self,
        name: str,
        body: dict[str, Any] | bytes,
        *,
        key: str | None = None,
        nonce: str | None = None,
        timestamp: str | None = None,
        signature: str | None = None,
    ) -> dict[str, Any]:
        raw = encode(body)
        nonce = nonce or uuid.uuid4().hex
        timestamp = timestamp or now_ms()
        sig = signature or sign_body(Kind.KIT, key or self.kit_key, nonce, timestamp, raw)
        response = await self.client.post(
            f"/koogallery/produceAPI/v2/{name}",
            content=raw,
            headers={
                "content-type": "application/json",
                "x-sign": sig,
                "x-timestamp": timestamp,
                "x-nonce": nonce,
            },
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]
