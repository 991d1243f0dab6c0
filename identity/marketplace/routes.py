"""`POST /koogallery` (basic, query-signed) and `POST /koogallery/produceAPI/v2/{name}` (kit,
header-signed). Always HTTP 200 with `{resultCode, resultMsg}` (contract §0.3, §1).

The route owns the transactions. A call with a good signature runs in one transaction: claim the
nonce, apply the change, write the audit row with what the change did; all or nothing. The
nonce's primary key makes a replay that reaches another process wait for the first call's
commit and then be refused. A signed call that fails is audited, and its nonce consumed, in a
transaction of its own, so a failed call cannot be replayed either. A call refused before its
signature is known good (unsigned, forged, malformed) is only logged and counted: anyone can
send those, and none of them may cost a database write.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from identity import web
from identity.errors import InvalidParameter, MarketplaceError, ResultCode, SignatureError
from identity.marketplace import service
from identity.marketplace.audit import CallRecord, claim_nonce, record_call
from identity.marketplace.schemas import parse
from identity.marketplace.signing import MAX_DEPTH, MAX_TOP_LEVEL_MEMBERS, Kind, check_request
from identity.observability import bind

log = structlog.get_logger("identity.marketplace")
router = APIRouter()

SUCCESS_MSG, INTERNAL_MSG = "success.", "other inner error"


@router.post("/koogallery")
async def basic_call(request: Request) -> Response:
    q = request.query_params
    signed = (q.get("signature"), q.get("timestamp"), q.get("nonce"))
    return await answer(
        request, Kind.BASIC, None, partial(_authenticate, request, Kind.BASIC, signed)
    )


@router.post("/koogallery/produceAPI/v2/{name}")
async def kit_call(name: str, request: Request) -> Response:
    h = request.headers
    signed = (h.get("x-sign"), h.get("x-timestamp"), h.get("x-nonce"))
    return await answer(request, Kind.KIT, name, partial(_authenticate, request, Kind.KIT, signed))


Signed = tuple[str | None, str | None, str | None]
Authenticate = Callable[[CallRecord], Awaitable[dict[str, Any]]]
"""Checks a call's signature and returns its body as a V2 call's; sets what the audit keeps
of it (`payload_sha256`, `signature_variant`, and `nonce` once the signature is good)."""
Respond = Callable[[dict[str, Any], CallRecord], Response]
"""The HTTP answer for a call's `{resultCode, resultMsg, …}`."""


def json_answer(content: dict[str, Any], _record: CallRecord) -> Response:
    return JSONResponse(content)


async def read_body(request: Request, limit: int) -> bytes:
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


async def _authenticate(
    request: Request, kind: Kind, signed: Signed, record: CallRecord
) -> dict[str, Any]:
    """Signature first, before anything else looks at the body (§2.4); the checks that need no
    body before it is even read."""
    mp = web.marketplace(request)
    signature, timestamp, nonce = signed
    check_request(
        signature=signature,
        timestamp=timestamp,
        nonce=nonce,
        now_ms=int(time.time() * 1000),
        window_ms=mp.settings.signature_window_seconds * 1000,
    )
    assert signature and timestamp and nonce
    keys = _keys(mp, kind)
    if not keys:
        raise SignatureError(f"no {kind} access key is configured")
    declared = request.headers.get("content-length", "")
    client = request.client.host if request.client else ""
    async with mp.verifier.turn(client, int(declared) if declared.isdigit() else None):
        body = await read_body(request, mp.settings.max_body_bytes)
        verified = await mp.verifier.match(kind, keys, signature, nonce, timestamp, body)
    if verified is None:
        raise SignatureError("signature does not match")
    record.payload_sha256 = hashlib.sha256(body).hexdigest()
    record.signature_variant = verified.variant
    record.nonce = nonce
    if verified.document is None:
        raise InvalidParameter(
            "body must be a JSON object of valid UTF-8 text, with at most "
            f"{MAX_TOP_LEVEL_MEMBERS} top-level members, nested at most {MAX_DEPTH} deep"
        )
    return verified.document


def _table(kind: Kind) -> dict[str, tuple[Any, service.Handler]]:
    return service.BASIC if kind is Kind.BASIC else service.KIT


def _label(kind: Kind, name: object) -> str:
    """The interface name for metrics and the audit: only known names, so that unsigned junk
    cannot create label series without bound."""
    if kind is Kind.BASIC and name is None:
        return "basic"
    return name if isinstance(name, str) and name in _table(kind) else "unknown"


def _route(kind: Kind, name: str | None, data: dict[str, Any]) -> tuple[Any, service.Handler]:
    table = _table(kind)
    if kind is Kind.BASIC:
        name = data.get("activity")
    if not isinstance(name, str) or name not in table:
        what = "activity" if kind is Kind.BASIC else "interface"
        raise InvalidParameter(f"unknown {what} {name!r}")
    model, handler = table[name]
    return parse(model, data), handler


_MESSAGES = {
    ResultCode.SUCCESS: SUCCESS_MSG,
    ResultCode.IN_PROGRESS: "in progress: the order is not confirmed yet.",
}


def _content(reply: service.Reply) -> dict[str, Any]:
    code = reply.result_code
    content: dict[str, Any] = {"resultCode": code.value, "resultMsg": _MESSAGES[code]}
    if reply.instance_id is not None:
        content["instanceId"] = reply.instance_id
    if reply.info is not None:
        content["info"] = reply.info
    return content


async def answer(
    request: Request, kind: Kind, name: str | None, authenticate: Authenticate,
    respond: Respond = json_answer,
) -> Response:  # fmt: skip
    """A call of either generation, once `authenticate` read it (see the module's docstring)."""
    started = time.perf_counter()
    record = CallRecord(interface=_label(kind, name))
    bind(interface=record.interface)
    db = web.database(request)
    try:
        data = await authenticate(record)
        if kind is Kind.BASIC:
            record.interface = _label(kind, data.get("activity"))
            bind(interface=record.interface)
        call, handler = _route(kind, name, data)
        record.tenant_id = getattr(call, "tenant_id", None)
        bind(tenant_id=record.tenant_id)
        record.instance_id = getattr(call, "instance_id", None)
        record.test = bool(getattr(call, "test", False))
        order = await service.ask_order(db, web.marketplace(request), call)
        if order is not None:
            web.metrics(request).order_queries.labels(order.kind.value).inc()
        async with db.transaction() as session:
            await _claim_nonce(request, session, record, required=True)
            reply = await service.apply(session, web.marketplace(request), handler, call, order)
            record.extra = {k: str(v) for k, v in reply.extra.items()}
            record.changes = reply.changes
            if reply.tenant_id is not None:  # an order-lifecycle call's one bound tenant
                record.tenant_id = reply.tenant_id
                bind(tenant_id=record.tenant_id)
            code, message = reply.result_code, _MESSAGES[reply.result_code]
            await _audit(request, session, record, code, message, started)
        return respond(_content(reply), record)
    except MarketplaceError as exc:
        code, message = exc.result_code, exc.message[:255]
    except Exception as exc:  # database down, a bug: retryable, and never a 500 or HTML page
        code, message = ResultCode.INTERNAL, INTERNAL_MSG
        log.error("marketplace_call_failed", interface=record.interface, error=type(exc).__name__)
    if record.nonce is None:
        # Not signed (or not well-formed enough to check): anyone can send these, so they go
        # to the log and the metrics only, never to the database.
        _report(request, record, code, message, started)
        return respond({"resultCode": code.value, "resultMsg": message}, record)
    record.changes = {}  # the call's transaction was rolled back: whatever it did is undone
    try:
        async with db.transaction() as session:
            await _claim_nonce(request, session, record, required=False)
            await _audit(request, session, record, code, message, started)
    except Exception as exc:  # the answer stands even when the audit cannot be written
        log.error("marketplace_audit_failed", interface=record.interface, error=type(exc).__name__)
    return respond({"resultCode": code.value, "resultMsg": message}, record)


async def _claim_nonce(
    request: Request, session: AsyncSession, record: CallRecord, *, required: bool
) -> None:
    """Consume the nonce of a call whose signature was good; a second use is a replay (000001)."""
    if record.nonce is None:
        return
    ttl = web.marketplace(request).settings.nonce_ttl_seconds
    if not await claim_nonce(session, record.nonce, ttl) and required:
        # A replay of a captured call: logged and counted like a forgery, never written, or
        # replaying one call through its window would write a row each time.
        record.nonce = None
        raise SignatureError("nonce has already been used")


def _report(
    request: Request, record: CallRecord, code: ResultCode, message: str, started: float
) -> float:
    """Metrics and one log line per call; never the payload. Returns the latency in ms."""
    latency_ms = (time.perf_counter() - started) * 1000
    metrics = web.metrics(request)
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
    return latency_ms


async def _audit(
    request: Request,
    session: AsyncSession,
    record: CallRecord,
    code: ResultCode,
    message: str,
    started: float,
) -> None:
    """A signed call's audit row, besides its metrics and log line."""
    latency_ms = _report(request, record, code, message, started)
    await record_call(session, record, code.value, message, latency_ms)
