"""Request signatures (contract §2, design "Decisions"): the §8.2 vectors, then the HTTP checks
a marketplace call goes through before anything else happens, and the audit row of every call."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx2 as httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from identity.db import Database
from identity.errors import InvalidParameter, SignatureError
from identity.marketplace.signing import (
    Kind,
    Verified,
    canonical_payload,
    parse_json,
    sign,
    sign_body,
    verify,
)
from identity.models import Instance, MarketplaceCall, Tenant
from identity.settings import Settings
from tests.helpers.kit_bodies import app_body, count, sender_for, tenant_body
from tests.helpers.marketplace_client import BASIC_KEY, KIT_KEY, SignedCalls, encode, now_ms

# --- §8.2 vectors ---------------------------------------------------------------------------

VECTOR_KEY = "TestAccessKey-0123456789"
VECTOR_TS = "1680508066618"
VECTOR_NONCE = "50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA"

BODY_A = (
    b'{"activity":"newInstance","businessId":"87b94795-0603-4e24-8ae5-69420d60e3c8",'
    b'"orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}'
)
INNER_A = "c144ae9052311082a071d4a0616199df8612927a44016964d9e735169a68d9be"
SIG_A = "c3e0739f9f9ac29f41d171ebc4882300bb9b6be2290f8ebd13d0b4e20f85b6d2"

BODY_B = (
    b'{"instanceId":"hua********23456","orderId":"CS1906666666ABCDE",'
    b'"tenantId":"68cbc86****************880d92f36422fa0e","tenantCode":"******",'
    b'"name":"******test","domainName":"https://example.tenantaccount.com","flag":1,'
    b'"testFlag":0,"timeStamp":"20220413093539534"}'
)
PAYLOAD_B = (
    '{"domainName":"https://example.tenantaccount.com","flag":1,"instanceId":"hua********23456",'
    '"name":"******test","orderId":"CS1906666666ABCDE","tenantCode":"******",'
    '"tenantId":"68cbc86****************880d92f36422fa0e","testFlag":0,'
    '"timeStamp":"20220413093539534"}'
)
SIG_B = "0bd040fc6c1dacd5f4304b38a607e0141691e7c8bed8945f2018375753e0dbc1"
SIG_B_RAW = "dbb7d7b3bf9d102dce0b440412bb9712317eeea35eaca3c0dbf1bc2e31f20bfd"

BODY_C = (
    '{"instanceId":"huaweitest123456","tenantId":"68cbc86abc","appId":"KSIDJF1234456",'
    '"userList":[{"userName":"zhangsan01","name":"张三","orgCode":"10000","role":"admin",'
    '"enable":"true"}],"currentSyncTime":"20220420114117642","flag":1,"testFlag":1,'
    '"timeStamp":"20220420114117642"}'
).encode()
PAYLOAD_C = (
    '{"appId":"KSIDJF1234456","currentSyncTime":"20220420114117642","flag":1,'
    '"instanceId":"huaweitest123456","tenantId":"68cbc86abc","testFlag":1,'
    '"timeStamp":"20220420114117642","userList":[{"userName":"zhangsan01","name":"张三",'
    '"orgCode":"10000","role":"admin","enable":"true"}]}'
)
SIG_C = "749097f93e7f71118382514813d52ba855ae855ddfe8da4207e6a2bcb48db6c7"


def verify_vector(kind: Kind, body: bytes, signature: str) -> Verified:
    return verify(
        kind,
        [VECTOR_KEY],
        signature=signature,
        timestamp=VECTOR_TS,
        nonce=VECTOR_NONCE,
        body=body,
        now_ms=int(VECTOR_TS),
        window_ms=60_000,
    )


def test_vector_a_basic() -> None:
    payload = canonical_payload(parse_json(BODY_A))
    assert payload.encode() == BODY_A
    inner = hmac.new(VECTOR_KEY.encode(), payload.encode(), hashlib.sha256).hexdigest()
    assert inner == INNER_A
    assert sign(Kind.BASIC, VECTOR_KEY, VECTOR_NONCE, VECTOR_TS, payload.encode()) == SIG_A
    assert sign_body(Kind.BASIC, VECTOR_KEY, VECTOR_NONCE, VECTOR_TS, BODY_A) == SIG_A
    assert verify_vector(Kind.BASIC, BODY_A, SIG_A) == Verified("canonical", 0)


def test_vector_b_kit_canonical_and_raw() -> None:
    assert canonical_payload(parse_json(BODY_B)) == PAYLOAD_B
    assert sign_body(Kind.KIT, VECTOR_KEY, VECTOR_NONCE, VECTOR_TS, BODY_B) == SIG_B
    assert sign(Kind.KIT, VECTOR_KEY, VECTOR_NONCE, VECTOR_TS, BODY_B) == SIG_B_RAW
    assert verify_vector(Kind.KIT, BODY_B, SIG_B) == Verified("canonical", 0)
    assert verify_vector(Kind.KIT, BODY_B, SIG_B_RAW) == Verified("raw", 0)


def test_vector_c_kit_nested_and_non_ascii() -> None:
    assert canonical_payload(parse_json(BODY_C)) == PAYLOAD_C
    assert sign_body(Kind.KIT, VECTOR_KEY, VECTOR_NONCE, VECTOR_TS, BODY_C) == SIG_C
    assert verify_vector(Kind.KIT, BODY_C, SIG_C).variant == "canonical"


@pytest.mark.parametrize(
    ("kind", "body", "signature"),
    [(Kind.BASIC, BODY_A, SIG_A), (Kind.KIT, BODY_B, SIG_B), (Kind.KIT, BODY_C, SIG_C)],
)
def test_verify_accepts_uppercase_hex(kind: Kind, body: bytes, signature: str) -> None:
    assert verify_vector(kind, body, signature.upper()).variant == "canonical"


def test_verify_rejects_the_other_kind_of_signature() -> None:
    with pytest.raises(SignatureError):
        verify_vector(Kind.KIT, BODY_A, SIG_A)
    with pytest.raises(SignatureError):
        verify_vector(Kind.BASIC, BODY_B, SIG_B)


def test_verify_checks_the_window_before_the_signature() -> None:
    with pytest.raises(InvalidParameter):
        verify(
            Kind.BASIC,
            [VECTOR_KEY],
            signature="bad",
            timestamp=VECTOR_TS,
            nonce=VECTOR_NONCE,
            body=BODY_A,
            now_ms=int(VECTOR_TS) + 60_001,
            window_ms=60_000,
        )


# --- over HTTP ------------------------------------------------------------------------------

TENANT_SYNC = tenant_body(instanceId="", orderId="")
NEW_INSTANCE = {"activity": "newInstance", "orderId": "O1", "orderLineId": "L1", "businessId": "b1"}
BODIES: dict[Kind, dict[str, Any]] = {Kind.BASIC: NEW_INSTANCE, Kind.KIT: TENANT_SYNC}
KEYS = {Kind.BASIC: BASIC_KEY, Kind.KIT: KIT_KEY}
FAILED, INVALID, OK = "000001", "000002", "000000"


async def send(
    client: httpx.AsyncClient,
    kind: Kind,
    body: dict[str, Any] | bytes,
    *,
    signature: str | None,
    timestamp: str | None,
    nonce: str | None,
) -> dict[str, Any]:
    """Post without the SignedCalls's defaults, so that any of the three values can be left out."""
    values = {"signature": signature, "timestamp": timestamp, "nonce": nonce}
    present = {k: v for k, v in values.items() if v is not None}
    if kind is Kind.BASIC:
        url, params, headers = "/koogallery", present, {}
    else:
        url, params = "/koogallery/produceAPI/v2/tenantSync", {}
        headers = {f"x-{'sign' if k == 'signature' else k}": v for k, v in present.items()}
    response = await client.post(
        url,
        params=params,
        content=encode(body),
        headers={"content-type": "application/json", **headers},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()  # type: ignore[no-any-return]


async def post(
    marketplace: SignedCalls, name: str, body: dict[str, Any] | bytes, **kw: Any
) -> dict[str, Any]:
    """A signed call: `name` is "basic" or a kit interface."""
    if name == "basic":
        return await marketplace.basic(body, **kw)
    return await marketplace.kit(name, body, **kw)


async def call(
    marketplace: SignedCalls, kind: Kind, body: dict[str, Any] | bytes, **kw: Any
) -> dict[str, Any]:
    return await post(marketplace, "basic" if kind is Kind.BASIC else "tenantSync", body, **kw)


async def written(db: Database) -> int:
    """Rows of business data (instances and tenants), the audit trail left aside."""
    return await count(db, Instance) + await count(db, Tenant)


async def audit_rows(db: Database) -> list[MarketplaceCall]:
    async with db.transaction() as s:
        return list(await s.scalars(select(MarketplaceCall).order_by(MarketplaceCall.id)))


async def test_valid_calls_are_accepted_and_write(marketplace: SignedCalls, db: Database) -> None:
    """The baseline the refusals below are measured against."""
    assert (await call(marketplace, Kind.BASIC, NEW_INSTANCE))["resultCode"] == OK
    assert (await call(marketplace, Kind.KIT, TENANT_SYNC))["resultCode"] == OK
    assert await count(db, Instance) == 1
    assert await count(db, Tenant) == 1


@pytest.mark.parametrize("kind", [Kind.BASIC, Kind.KIT])
async def test_the_other_kinds_key_is_refused(
    marketplace: SignedCalls, db: Database, kind: Kind
) -> None:
    other = KEYS[Kind.KIT if kind is Kind.BASIC else Kind.BASIC]
    reply = await call(marketplace, kind, BODIES[kind], key=other)
    assert reply["resultCode"] == FAILED, reply
    assert await written(db) == 0


@pytest.mark.parametrize("kind", [Kind.BASIC, Kind.KIT])
async def test_wrong_signature_is_refused(
    marketplace: SignedCalls, db: Database, kind: Kind
) -> None:
    reply = await call(marketplace, kind, BODIES[kind], signature="ab" * 32)
    assert reply["resultCode"] == FAILED, reply
    assert await written(db) == 0


def _signed(kind: Kind, body: dict[str, Any], timestamp: str, nonce: str) -> str:
    return sign_body(kind, KEYS[kind], nonce, timestamp, encode(body))


@pytest.mark.parametrize("kind", [Kind.BASIC, Kind.KIT])
@pytest.mark.parametrize(
    ("missing", "code"), [("signature", FAILED), ("timestamp", INVALID), ("nonce", INVALID)]
)
async def test_missing_security_values(
    client: httpx.AsyncClient, db: Database, kind: Kind, missing: str, code: str
) -> None:
    ts, nonce = now_ms(), uuid.uuid4().hex
    sig = _signed(kind, BODIES[kind], ts, nonce)
    values: dict[str, str | None] = {"signature": sig, "timestamp": ts, "nonce": nonce}
    values[missing] = None
    reply = await send(client, kind, BODIES[kind], **values)
    assert reply["resultCode"] == code, reply
    assert await written(db) == 0


def _ms_from_now(offset_ms: int) -> str:
    return str(int(time.time() * 1000) + offset_ms)


@pytest.mark.parametrize("kind", [Kind.BASIC, Kind.KIT])
@pytest.mark.parametrize(
    "timestamp",
    [
        pytest.param("1680508066618x", id="not-numeric"),
        pytest.param("-1", id="negative"),
        pytest.param("soon", id="word"),
        pytest.param(lambda: _ms_from_now(-61_000), id="61s-old"),
        pytest.param(lambda: _ms_from_now(61_000), id="61s-ahead"),
        pytest.param(lambda: str(int(time.time())), id="seconds-not-ms"),
    ],
)
async def test_bad_timestamp_is_invalid(
    client: httpx.AsyncClient, db: Database, kind: Kind, timestamp: Any
) -> None:
    ts = timestamp() if callable(timestamp) else timestamp
    nonce = uuid.uuid4().hex
    sig = _signed(kind, BODIES[kind], ts, nonce)
    reply = await send(client, kind, BODIES[kind], signature=sig, timestamp=ts, nonce=nonce)
    assert reply["resultCode"] == INVALID, reply
    assert await written(db) == 0


@pytest.mark.parametrize("offset_ms", [-55_000, 55_000])
async def test_timestamp_inside_the_window_is_accepted(
    marketplace: SignedCalls, db: Database, offset_ms: int
) -> None:
    reply = await marketplace.basic(NEW_INSTANCE, timestamp=_ms_from_now(offset_ms))
    assert reply["resultCode"] == OK, reply
    assert await count(db, Instance) == 1


@pytest.mark.parametrize("kind", [Kind.BASIC, Kind.KIT])
async def test_replayed_nonce_is_refused(
    marketplace: SignedCalls, db: Database, kind: Kind
) -> None:
    nonce = uuid.uuid4().hex
    first = await call(marketplace, kind, BODIES[kind], nonce=nonce)
    assert first["resultCode"] == OK, first
    before = await written(db)
    # A different body under a fresh, valid signature: only the nonce is repeated.
    body = {**BODIES[kind], "orderLineId": "L2", "tenantId": "T2"}
    again = await call(marketplace, kind, body, nonce=nonce, timestamp=_ms_from_now(-1000))
    assert again["resultCode"] == FAILED, again
    assert await written(db) == before == 1


@pytest.mark.parametrize("kind", [Kind.BASIC, Kind.KIT])
async def test_signature_over_the_raw_body_is_accepted(
    marketplace: SignedCalls, db: Database, kind: Kind
) -> None:
    # Keys out of order and spaces: the raw bytes differ from the canonical form.
    pretty = json.dumps(dict(reversed(BODIES[kind].items())), indent=1).encode()
    assert pretty != canonical_payload(parse_json(pretty)).encode()
    ts, nonce = now_ms(), uuid.uuid4().hex
    sig = sign(kind, KEYS[kind], nonce, ts, pretty)
    reply = await call(marketplace, kind, pretty, signature=sig, timestamp=ts, nonce=nonce)
    assert reply["resultCode"] == OK, reply
    assert await written(db) == 1
    assert [row.signature_variant for row in await audit_rows(db)] == ["raw"]


@pytest.mark.parametrize("kind", [Kind.BASIC, Kind.KIT])
@pytest.mark.parametrize(("rotating", "code"), [(True, OK), (False, FAILED)])
async def test_previous_key_is_accepted_during_rotation(
    settings: Settings, db: Database, kind: Kind, rotating: bool, code: str
) -> None:
    old = f"old-{kind}-key-0123456789"
    field = f"marketplace_{kind}_key_previous"
    custom = settings.model_copy(update={field: SecretStr(old)}) if rotating else settings
    async with sender_for(custom) as (sender, _):
        reply = await call(sender, kind, BODIES[kind], key=old)
        assert reply["resultCode"] == code, reply
        # The current key keeps working throughout.
        other_body = {**BODIES[kind], "orderLineId": "L2", "tenantId": "T2"}
        assert (await call(sender, kind, other_body))["resultCode"] == OK
    assert await written(db) == (2 if rotating else 1)


APPLICATION_SYNC = app_body("this is not an RSA-OAEP ciphertext", instanceId="")


@pytest.mark.parametrize(("signature", "code"), [(None, "000101"), ("ab" * 32, FAILED)])
async def test_signature_is_checked_before_the_client_secret(
    marketplace: SignedCalls, signature: str | None, code: str
) -> None:
    """A good signature reaches the decryption (000101); a bad one never gets that far."""
    reply = await marketplace.kit("applicationSync", APPLICATION_SYNC, signature=signature)
    assert reply["resultCode"] == code, reply


# --- audit ----------------------------------------------------------------------------------

RELEASE_UNKNOWN = {"activity": "releaseInstance", "instanceId": "nope"}


@pytest.mark.parametrize(
    ("name", "body", "kw", "interface", "code"),
    [
        ("basic", NEW_INSTANCE, {}, "newInstance", OK),
        ("tenantSync", TENANT_SYNC, {}, "tenantSync", OK),
        ("basic", RELEASE_UNKNOWN, {}, "releaseInstance", "000003"),
        ("tenantSync", {**TENANT_SYNC, "flag": "1"}, {}, "tenantSync", INVALID),
    ],
)
async def test_every_signed_call_writes_one_audit_row(
    marketplace: SignedCalls,
    db: Database,
    name: str,
    body: dict[str, Any],
    kw: dict[str, str],
    interface: str,
    code: str,
) -> None:
    reply = await post(marketplace, name, body, **kw)
    assert reply["resultCode"] == code, reply
    rows = await audit_rows(db)
    assert len(rows) == 1
    row = rows[0]
    assert (row.interface, row.result_code) == (interface, code)
    assert row.result_msg == reply["resultMsg"]
    assert row.payload_sha256 == hashlib.sha256(encode(body)).hexdigest()
    assert row.latency_ms > 0


async def test_audit_rows_accumulate_one_per_signed_call(
    marketplace: SignedCalls, db: Database
) -> None:
    await post(marketplace, "basic", NEW_INSTANCE)
    await post(marketplace, "basic", NEW_INSTANCE)
    await post(marketplace, "tenantSync", TENANT_SYNC, signature="00" * 32)
    await post(marketplace, "basic", NEW_INSTANCE, timestamp="1")
    rows = await audit_rows(db)
    assert [(r.interface, r.result_code) for r in rows] == [
        ("newInstance", OK),
        ("newInstance", OK),
    ]
