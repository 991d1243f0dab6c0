"""The marketplace's first generation of callbacks (V1), still used by older products.

V1 signs differently and shapes a few calls differently; underneath, a V1 call is turned into
the V2 call it stands for and goes the same way (`identity.marketplace.routes`): the same
models and checks, the same directory, idempotency, order, replay window, audit and end of
access. What differs is here:

- The key: one seller key (`IDENTITY_MARKETPLACE_V1_KEY`) for every interface.
- The request's signature, `authToken` (contract §2.6): `Base64(HMAC-SHA256(key + timeStamp,
  "k1=v1&k2=v2…"))` over the parameters sorted by name, `authToken` left out, each value as its
  text. A basic call is a `GET` with every parameter (URL-decoded) and the `authToken` in the
  query; a kit call a `POST` to `/produceAPI/{name}` (no `/v2/`) with the `authToken` header,
  over the body's top-level fields, blank ones skipped as the V1 sample does, a number as its
  decimal text. `timeStamp` is UTC `yyyyMMddHHmmssSSS`; the call must fall within the signature
  window, and its `authToken` is consumed as a V2 call's nonce is (a replay is refused).
- The answer's signature, `Body-Sign: sign_type="HMAC-SHA256", signature="…"`, the Base64 of
  HMAC-SHA256 under the key alone over the exact bytes of the body (§2.5).
- The basic activities' names and fields (§4.8): `expireInstance` is a FREEZE, `upgrade` is
  upgradeInstance; V1 orders have no order lines, so the order id stands for its only line;
  `trialToFormal=1` is the refresh's TRIAL_TO_FORMAL scene, any other refresh a RENEWAL. V1
  had no unfreeze. The kit's V1 shapes (authSync's `userList` as a string of JSON with the
  `extension` object, allOrgSync's `orgInfo` with `name`) are read by the V2 models already.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from identity.errors import InvalidParameter, SignatureError

TIMESTAMP_FORMAT = "%Y%m%d%H%M%S%f"


def _mac(key: str, data: bytes) -> str:
    return base64.b64encode(hmac.new(key.encode(), data, hashlib.sha256).digest()).decode()


def signed_text(fields: Mapping[str, Any], *, skip_blank: bool) -> str:
    """`k1=v1&k2=v2…` over `fields` sorted by name, `authToken` left out. `skip_blank`: leave out
    fields that are null or only white space (the kit's POST, as the V1 sample does)."""
    parts = []
    for name in sorted(fields):
        value = fields[name]
        if name == "authToken" or (skip_blank and (value is None or str(value).strip() == "")):
            continue
        parts.append(f"{name}={_text(value)}")
    return "&".join(parts)


def _text(value: Any) -> str:
    """A value as V1's Java signer writes it: a string as it is, a number as its decimal text,
    true and false in lower case, a nested object as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def auth_token(key: str, time_stamp: str, text: str) -> str:
    """`Base64(HMAC-SHA256(key + timeStamp, text))` (§2.6)."""
    return _mac(key + time_stamp, text.encode())


def body_sign(key: str, body: bytes) -> bytes:
    """The `Body-Sign` header's value for an answer's exact bytes (§2.5)."""
    return f'sign_type="HMAC-SHA256", signature="{_mac(key, body)}"'.encode()


def check(key: str, fields: Mapping[str, Any], token: str | None, *, skip_blank: bool,
          now_ms: int, window_ms: int) -> str:  # fmt: skip
    """The call's `authToken` is `key`'s over `fields`, and its `timeStamp` within the window;
    returns the time stamp. SignatureError (000001) otherwise."""
    stamp = fields.get("timeStamp")
    if not token:
        raise SignatureError("authToken is missing")
    if not isinstance(stamp, str) or not stamp:
        raise SignatureError("timeStamp is missing")
    try:
        moment = datetime.strptime(stamp, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError("timeStamp is not UTC yyyyMMddHHmmssSSS") from None
    if len(stamp) != 17:
        raise SignatureError("timeStamp is not UTC yyyyMMddHHmmssSSS")
    if abs(int(moment.timestamp() * 1000) - now_ms) > window_ms:
        raise SignatureError("timeStamp is outside the accepted window")
    expected = auth_token(key, stamp, signed_text(fields, skip_blank=skip_blank))
    if not hmac.compare_digest(expected.encode(), token.encode()):
        raise SignatureError("authToken does not match")
    return stamp


def query_fields(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """A V1 GET's parameters (already URL-decoded), none repeated."""
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise InvalidParameter(f"parameter {name[:32]!r} is repeated")
        fields[name] = value
    return fields


ACTIVITIES = {
    "newInstance": "newInstance",
    "queryInstance": "queryInstance",
    "refreshInstance": "refreshInstance",
    "expireInstance": "updateInstanceStatus",
    "releaseInstance": "releaseInstance",
    "upgrade": "upgradeInstance",
}
"""V1's basic activities and the V2 activity each stands for."""


def as_v2(fields: Mapping[str, str]) -> dict[str, Any]:
    """A V1 basic call's parameters as the body of the V2 call it stands for (§4.8)."""
    activity = fields.get("activity", "")
    if activity not in ACTIVITIES:
        raise InvalidParameter(f"unknown activity {activity[:32]!r}")
    kept = {k: v for k, v in fields.items() if k not in ("authToken", "timeStamp", "activity")}
    test = {"testFlag": "1"} if fields.get("testFlag") == "1" else {}
    order = fields.get("orderId", "")
    body: dict[str, Any]
    if activity == "newInstance":
        business = fields.get("businessId") or order
        body = {"orderId": order, "orderLineId": order, "businessId": business}
    elif activity == "refreshInstance":
        scene = "TRIAL_TO_FORMAL" if fields.get("trialToFormal") == "1" else "RENEWAL"
        body = {**_some(kept, "instanceId", "productId", "expireTime"), "scene": scene,
                "orderId": order, "orderLineId": order}  # fmt: skip
    elif activity == "expireInstance":
        body = {**_some(kept, "instanceId"), "status": "FREEZE"}
    elif activity == "upgrade":
        body = {**_some(kept, "instanceId"), "orderId": order, "orderLineId": order}
    else:
        body = _some(kept, "instanceId", "orderId")
    return {"activity": ACTIVITIES[activity], **body, **test}


def _some(fields: Mapping[str, str], *names: str) -> dict[str, str]:
    return {name: fields[name] for name in names if name in fields}
