"""The V1 callbacks' routes, answered when `IDENTITY_MARKETPLACE_V1_KEY` is set (`v1`):
`GET /koogallery?activity=…&timeStamp=…&authToken=…` (basic) and
`POST /koogallery/produceAPI/{name}` with an `authToken` header (kit). Each goes the V2 way
(`routes.answer`); only the signature check and the answer's `Body-Sign` are V1's.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from identity import web
from identity.errors import InvalidParameter
from identity.marketplace import v1
from identity.marketplace.audit import CallRecord
from identity.marketplace.routes import answer, read_body
from identity.marketplace.signing import MAX_DEPTH, MAX_TOP_LEVEL_MEMBERS, Kind, parse_object

router = APIRouter()
SIGNATURE = "v1"
"""The audit's `signature_variant` of a V1 call."""


def _key(request: Request) -> str:
    key = web.marketplace(request).settings.marketplace_v1_key
    assert key is not None  # the router is included only with a key
    return key.get_secret_value()


def _checked(request: Request, record: CallRecord, fields: dict[str, Any], token: str | None,
             *, skip_blank: bool) -> None:  # fmt: skip
    """The authToken is the V1 key's and fresh; the audit keeps it as the call's nonce (a
    replay inside the window is refused as a V2 replay is)."""
    settings = web.marketplace(request).settings
    v1.check(
        _key(request), fields, token, skip_blank=skip_blank, now_ms=int(time.time() * 1000),
        window_ms=settings.signature_window_seconds * 1000,
    )  # fmt: skip
    record.signature_variant = SIGNATURE
    record.nonce = f"v1:{token}"


def _signed(request: Request) -> Any:
    """An answer's exact bytes, with `Body-Sign` over them (§2.5); the header's name is written
    as the contract spells it (Starlette would write it in lower case)."""
    key = _key(request)

    def respond(content: dict[str, Any], record: CallRecord) -> Response:
        if record.interface == "newInstance" and "instanceId" in content:
            # V1's newInstance also answers where the app is (§4.8); no account to encrypt.
            url = web.marketplace(request).settings.effective_frontend_url
            content = {**content, "appInfo": {"frontEndUrl": url}}
        body = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
        response = Response(body, media_type="application/json")
        response.raw_headers.append((b"Body-Sign", v1.body_sign(key, body)))
        return response

    return respond


@router.get("/koogallery")
async def basic_call(request: Request) -> Response:
    async def authenticate(record: CallRecord) -> dict[str, Any]:
        fields = v1.query_fields(request.query_params.multi_items())
        record.payload_sha256 = hashlib.sha256(request.url.query.encode()).hexdigest()
        _checked(request, record, fields, fields.get("authToken"), skip_blank=False)
        return v1.as_v2(fields)

    return await answer(request, Kind.BASIC, None, authenticate, _signed(request))


@router.post("/koogallery/produceAPI/{name}")
async def kit_call(name: str, request: Request) -> Response:
    async def authenticate(record: CallRecord) -> dict[str, Any]:
        body = await read_body(request, web.marketplace(request).settings.max_body_bytes)
        record.payload_sha256 = hashlib.sha256(body).hexdigest()
        document = parse_object(body)
        if document is None:
            raise InvalidParameter(
                "body must be a JSON object of valid UTF-8 text, with at most "
                f"{MAX_TOP_LEVEL_MEMBERS} top-level members, nested at most {MAX_DEPTH} deep"
            )
        _checked(request, record, document, request.headers.get("authToken"), skip_blank=True)
        return document

    return await answer(request, Kind.KIT, name, authenticate, _signed(request))
