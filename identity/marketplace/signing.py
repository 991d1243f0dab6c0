"""KooGallery V2 request signatures (contract §2.1–§2.4).

Basic calls: `hex(HMAC(key, key + nonce + timestamp + hex(HMAC(key, payload))))`.
Kit calls:   `hex(HMAC(key, key + nonce + timestamp + payload))`.
`payload` is the demo's canonical JSON (top-level keys sorted, nulls dropped, compact, raw
UTF-8, nested order kept); as a fallback the raw body bytes are accepted too (design decision).
The same functions sign for the simulator and the tests, so both sides agree by construction
and the §8.2 vectors pin the formulas.

Refusing a forged call must stay cheap, because anyone can send one:
- the timestamp and nonce must have the exact form the marketplace sends. The signed string
  concatenates them, so a looser form (a timestamp with leading zeros) would let a captured
  call be replayed under a "fresh" nonce with the same signature;
- the raw-body candidate is checked first (one HMAC per key, linear), and only a body that
  fails it is parsed and canonicalised, within limits on top-level members and nesting that
  real calls are far below;
- `match_canonical` is a pure function of its arguments, so large bodies can be checked in
  another process (`identity.marketplace.verifier`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from identity.errors import InvalidParameter, SignatureError

TIMESTAMP = re.compile(r"[1-9][0-9]{12}")
"""Epoch milliseconds as the marketplace sends them: 13 digits, no sign, no leading zero."""
NONCE = re.compile(r"[A-Za-z0-9]{16,64}")
"""The documented shapes (64 hex characters, or 16-32 letters and digits), with room between."""
MAX_TOP_LEVEL_MEMBERS = 64
"""Real calls have at most a dozen top-level fields."""
MAX_DEPTH = 8
"""Real calls nest four deep at most (body, userList, user, V1 extension)."""


class Kind(StrEnum):
    BASIC = "basic"
    KIT = "kit"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    """A JSON number as a float; one past the float range (`1e999`) would be Infinity."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:16]} is out of range")
    return value


def parse_json(body: bytes) -> Any:
    """Parse like Jackson's LinkedHashMap: member order kept, a duplicate key keeps its first
    position and its last value (as a plain dict does), and no NaN/Infinity, written or reached
    by overflow."""
    return json.loads(body, parse_constant=_reject_constant, parse_float=_finite)


def canonical_payload(obj: dict[str, Any]) -> str:
    """The demo's RequestPayload (§2.3): only the top level is sorted."""
    ordered = {k: obj[k] for k in sorted(obj) if obj[k] is not None}
    return json.dumps(ordered, ensure_ascii=False, separators=(",", ":"))


def _hmac_hex(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def sign(kind: Kind, key: str, nonce: str, timestamp: str, payload: bytes) -> str:
    k = key.encode()
    if kind is Kind.BASIC:
        inner = _hmac_hex(k, payload)
        return _hmac_hex(k, k + nonce.encode() + timestamp.encode() + inner.encode())
    return _hmac_hex(k, k + nonce.encode() + timestamp.encode() + payload)


def sign_body(kind: Kind, key: str, nonce: str, timestamp: str, body: bytes) -> str:
    """Sign a body the way the marketplace does: over the canonical form of a JSON object,
    else (for the simulator's and the tests' malformed bodies) over the raw bytes."""
    document = parse_object(body)
    payload = body if document is None else canonical_payload(document).encode()
    return sign(kind, key, nonce, timestamp, payload)


@dataclass(frozen=True)
class Verified:
    variant: str
    """Which payload form matched: "canonical" or "raw" (logged to settle contract §10.2)."""
    key_index: int
    """0 for the current key, 1 for the previous one (during rotation)."""
    document: dict[str, Any] | None = field(default=None, compare=False)
    """The body parsed once here, for the caller, top-level nulls dropped; None when it is not
    a JSON object within the limits."""


def _within_depth(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, dict | list):
                if depth >= limit:
                    return False
                stack.append((child, depth + 1))
    return True


def parse_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object of valid Unicode (a lone surrogate escape such as "\\ud800"
    parses but can be neither signed canonically nor stored), within the limits on top-level
    members and nesting, else None."""
    parsed = _parse_canonical(body)
    return None if parsed is None else parsed[0]


def _parse_canonical(body: bytes) -> tuple[dict[str, Any], bytes] | None:
    """`parse_object`, with the canonical form of what it parsed."""
    try:
        obj = parse_json(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or len(obj) > MAX_TOP_LEVEL_MEMBERS:
        return None
    if not _within_depth(obj, MAX_DEPTH):
        return None
    try:
        return obj, canonical_payload(obj).encode()
    except ValueError:  # UnicodeEncodeError is a ValueError
        return None


def _without_nulls(document: dict[str, Any]) -> dict[str, Any]:
    """A top-level null is dropped by the canonical form, so one can be added to a captured
    body without breaking its signature: it must mean nothing, exactly as if absent."""
    return {k: v for k, v in document.items() if v is not None}


def check_request(
    *, signature: str | None, timestamp: str | None, nonce: str | None, now_ms: int, window_ms: int
) -> None:
    """The checks that need no body, in the demo's order (§2.4)."""
    if not timestamp:
        raise InvalidParameter("timestamp is missing")
    if not TIMESTAMP.fullmatch(timestamp):
        raise InvalidParameter("timestamp must be 13 digits of epoch milliseconds")
    if abs(now_ms - int(timestamp)) > window_ms:
        raise InvalidParameter("timestamp is outside the accepted window")
    if not nonce:
        raise InvalidParameter("nonce is missing")
    if not NONCE.fullmatch(nonce):
        raise InvalidParameter("nonce must be 16 to 64 letters and digits")
    if not signature:
        raise SignatureError("signature is missing")


def _matching_key(
    kind: Kind, keys: list[str], signature: str, nonce: str, timestamp: str, payload: bytes
) -> int | None:
    """The index of the key the signature matches over `payload`, or None. Every key is
    compared, so the time taken does not tell a caller which key came close."""
    given = signature.lower().encode("utf-8", "replace")
    found = None
    for index, key in enumerate(keys):
        expected = sign(kind, key, nonce, timestamp, payload).encode()
        if hmac.compare_digest(given, expected) and found is None:
            found = index
    return found


def match_raw(
    kind: Kind, keys: list[str], signature: str, nonce: str, timestamp: str, body: bytes
) -> Verified | None:
    """The signature over the body as sent: one HMAC per key, linear, no parsing unless it
    matches. "canonical" when the body is also in the canonical form."""
    index = _matching_key(kind, keys, signature, nonce, timestamp, body)
    if index is None:
        return None
    parsed = _parse_canonical(body)
    if parsed is None:
        return Verified("raw", index, None)
    variant = "canonical" if parsed[1] == body else "raw"
    return Verified(variant, index, _without_nulls(parsed[0]))


def match_canonical(
    kind: Kind, keys: list[str], signature: str, nonce: str, timestamp: str, body: bytes
) -> Verified | None:
    """The signature over the canonical form of the body (§2.3): parsed and re-serialised
    within the limits. A pure function of its arguments, so it can run in another process."""
    parsed = _parse_canonical(body)
    if parsed is None:
        return None
    index = _matching_key(kind, keys, signature, nonce, timestamp, parsed[1])
    return None if index is None else Verified("canonical", index, _without_nulls(parsed[0]))


def match(
    kind: Kind, keys: list[str], signature: str, nonce: str, timestamp: str, body: bytes
) -> Verified | None:
    """Which payload form and key the signature matches, or None; the raw body first."""
    return match_raw(kind, keys, signature, nonce, timestamp, body) or match_canonical(
        kind, keys, signature, nonce, timestamp, body
    )


def verify(
    kind: Kind,
    keys: list[str],
    *,
    signature: str | None,
    timestamp: str | None,
    nonce: str | None,
    body: bytes,
    now_ms: int,
    window_ms: int,
) -> Verified:
    """Check a request's signature in this process (the route uses the verifier instead)."""
    check_request(
        signature=signature, timestamp=timestamp, nonce=nonce, now_ms=now_ms, window_ms=window_ms
    )
    assert signature and nonce and timestamp
    if not keys:
        raise SignatureError(f"no {kind} access key is configured")
    verified = match(kind, keys, signature, nonce, timestamp, body)
    if verified is None:
        raise SignatureError("signature does not match")
    return verified
