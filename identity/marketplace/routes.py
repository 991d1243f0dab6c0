"""`POST /koogallery` (basic, query-signed) and `POST /koogallery/produceAPI/v2/{name}` (kit,
header-signed). Always HTTP 200 with `{resultCode, resultMsg}` (contract §0.3, §1).

The route owns three short transactions: the nonce claim (so a replay is refused even while the
first call is still running elsewhere), the business change (all or nothing), and the audit row.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from identity.db import Database
from identity.errors import InvalidParameter, MarketplaceError, ResultCode, SignatureError
from identity.marketplace import service
from identity.marketplace.audit import CallRecord, claim_nonce, record_call
from identity.marketplace.schemas import parse
from identity.marketplace.signing import Kind, parse_json, verify
from identity.observability import Metrics

log = structlog.get_logger("identity.marketplace")
router = APIRouter()

MESSAGES = {ResultCode.SUCCESS: "success.", ResultCode.INTERNAL: "other inner error"}


@router.post("/koogallery")
async def basic_call(request: Request) -> JSONResponse:
    q = request.query_params
    return await _answer(
        request, Kind.BASIC, None, q.get("signature"), q.get("timestamp"), q.get("nonce")
    )


@router.post("/koogallery/produceAPI/v2/{name}")
async def kit_call(name: str, request: Request) -> JSONResponse:
    h = request.headers
    return await _answer(
        request, Kind.KIT, name, h.get("x-sign"), h.get("x-timestamp"), h.get("x-nonce")
    )


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise InvalidParameter(f"body exceeds {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InvalidParameter(f"body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _keys(mp: service.Marketplace, kind: Kind) -> list[str]:
    st = mp.settings
    pair = (
        (st.marketplace_basic_key, st.marketplace_basic_key_previous)
        if kind is Kind.BASIC
        else (st.marketplace_kit_key, st.marketplace_kit_key_previous)
    )
    return [k.get_secret_value() for k in pair if k is not None and k.get_secret_value()]


async def _process(
    request: Request,
    kind: Kind,
    name: str | None,
    sig: str | None,
    ts: str | None,
    nonce: str | None,
    record: CallRecord,
) -> service.Reply:
    db: Database = request.app.state.db
    mp: service.Marketplace = request.app.state.marketplace
    body = await _read_body(request, mp.settings.max_body_bytes)
    record.payload_sha256 = hashlib.sha256(body).hexdigest()
    verified = verify(
        kind,
        _keys(mp, kind),
        signature=sig,
        timestamp=ts,
        nonce=nonce,
        body=body,
        now_ms=int(time.time() * 1000),
        window_ms=mp.settings.signature_window_seconds * 1000,
    )
    record.signature_variant = verified.variant
    assert nonce is not None
    async with db.transaction() as session:
        if not await claim_nonce(session, nonce, mp.settings.nonce_ttl_seconds):
            raise SignatureError("nonce has already been used")
    try:
        data = parse_json(body)
    except (ValueError, RecursionError):
        raise InvalidParameter("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidParameter("body must be a JSON object")
    if kind is Kind.BASIC:
        name = data.get("activity")
        record.interface = str(name)[:32]
        table = service.BASIC
    else:
        table = service.KIT
    if not isinstance(name, str) or name not in table:
        what = "activity" if kind is Kind.BASIC else "interface"
        raise InvalidParameter(f"unknown {what} {name!r}")
    model, handler = table[name]
    call = parse(model, data)
    record.tenant_id = getattr(call, "tenant_id", None)
    record.instance_id = getattr(call, "instance_id", None)
    record.test = bool(getattr(call, "test", False))
    async with db.transaction() as session:
        return await handler(session, mp, call)


async def _answer(
    request: Request,
    kind: Kind,
    name: str | None,
    sig: str | None,
    ts: str | None,
    nonce: str | None,
) -> JSONResponse:
    started = time.perf_counter()
    record = CallRecord(interface=name or "basic")
    content: dict[str, Any]
    try:
        reply = await _process(request, kind, name, sig, ts, nonce, record)
        code, message = ResultCode.SUCCESS, MESSAGES[ResultCode.SUCCESS]
        content = {"resultCode": code.value, "resultMsg": message}
        if reply.instance_id is not None:
            content["instanceId"] = reply.instance_id
        if reply.info is not None:
            content["info"] = reply.info
        record.extra = {k: str(v) for k, v in reply.extra.items()}
    except MarketplaceError as exc:
        code, message = exc.result_code, exc.message
        content = {"resultCode": code.value, "resultMsg": message[:255]}
    except Exception as exc:  # database down, a bug: retryable, and never a 500 or HTML page
        code, message = ResultCode.INTERNAL, MESSAGES[ResultCode.INTERNAL]
        content = {"resultCode": code.value, "resultMsg": message}
        log.error("marketplace_call_failed", interface=record.interface, error=type(exc).__name__)
    latency_ms = (time.perf_counter() - started) * 1000
    await _audit(request, record, code, message, latency_ms)
    return JSONResponse(content)


async def _audit(
    request: Request, record: CallRecord, code: ResultCode, message: str, latency_ms: float
) -> None:
    metrics: Metrics = request.app.state.metrics
    metrics.marketplace_calls.labels(record.interface, code.value).inc()
    metrics.marketplace_latency.labels(record.interface).observe(latency_ms / 1000)
    log.info(
        "marketplace_call",
        interface=record.interface,
        result_code=code.value,
        tenant_id=record.tenant_id,
        instance_id=record.instance_id,
        test=record.test,
        signature=record.signature_variant,
        latency_ms=round(latency_ms, 1),
        **record.extra,
        **({"reason": message} if code is not ResultCode.SUCCESS else {}),
    )
    try:
        async with request.app.state.db.transaction() as session:
            await record_call(session, record, code.value, message, latency_ms)
    except Exception as exc:  # the answer stands even when the audit cannot be written
        log.error("marketplace_audit_failed", interface=record.interface, error=type(exc).__name__)
