"""KooGallery V2 request signatures (contract §2.1–§2.4).

Basic calls: `hex(HMAC(key, key + nonce + timestamp + hex(HMAC(key, payload))))`.
Kit calls:   `hex(HMAC(key, key + nonce + timestamp + payload))`.
`payload` is the demo's canonical JSON (top-level keys sorted, nulls dropped, compact, raw
UTF-8, nested order kept); as a fallback the raw body bytes are accepted too (design decision).
The same functions sign for the simulator and the tests, so both sides agree by construction
and the §8.2 vectors pin the formulas.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from identity.errors import InvalidParameter, SignatureError

MAX_NONCE_LENGTH = 128


class Kind(StrEnum):
    BASIC = "basic"
    KIT = "kit"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes) -> Any:
    """Parse like Jackson's LinkedHashMap: member order kept, a duplicate key keeps its first
    position and its last value (as a plain dict does), and no NaN/Infinity."""
    return json.loads(body, parse_constant=_reject_constant)


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
    return sign(kind, key, nonce, timestamp, _payload_variants(body, parse_object(body))[0][1])


@dataclass(frozen=True)
class Verified:
    variant: str
    """Which payload form matched: "canonical" or "raw" (logged to settle contract §10.2)."""
    key_index: int
    """0 for the current key, 1 for the previous one (during rotation)."""
    document: dict[str, Any] | None = field(default=None, compare=False)
    """The body parsed once here, for the caller; None when it is not a JSON object."""


def parse_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object of valid Unicode (a lone surrogate escape such as "\\ud800"
    parses but can be neither signed canonically nor stored), else None."""
    try:
        obj = parse_json(body)
        if isinstance(obj, dict):
            canonical_payload(obj).encode()
            return obj
    except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        pass
    return None


def _payload_variants(body: bytes, document: dict[str, Any] | None) -> list[tuple[str, bytes]]:
    variants: list[tuple[str, bytes]] = []
    if document is not None:
        variants.append(("canonical", canonical_payload(document).encode()))
    variants.append(("raw", body))
    return variants


def check_timestamp(timestamp: str | None, now_ms: int, window_ms: int) -> None:
    if not timestamp:
        raise InvalidParameter("timestamp is missing")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 15:
        raise InvalidParameter("timestamp must be epoch milliseconds")
    if abs(now_ms - int(timestamp)) > window_ms:
        raise InvalidParameter("timestamp is outside the accepted window")


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
    """Check a request's signature; the checks run in the demo's order (§2.4)."""
    check_timestamp(timestamp, now_ms, window_ms)
    assert timestamp is not None
    if not nonce:
        raise InvalidParameter("nonce is missing")
    if len(nonce) > MAX_NONCE_LENGTH or not nonce.isascii() or not nonce.isprintable():
        raise InvalidParameter("nonce is malformed")
    if not signature:
        raise SignatureError("signature is missing")
    if not keys:
        raise SignatureError(f"no {kind} access key is configured")
    given = signature.lower().encode("utf-8", "replace")
    document = parse_object(body)
    matched: Verified | None = None
    for variant, payload in _payload_variants(body, document):
        for index, key in enumerate(keys):
            expected = sign(kind, key, nonce, timestamp, payload).encode()
            # Compare every candidate: no early exit tells a caller which form came close.
            if hmac.compare_digest(given, expected) and matched is None:
                matched = Verified(variant, index, document)
    if matched is None:
        raise SignatureError("signature does not match")
    return matched
