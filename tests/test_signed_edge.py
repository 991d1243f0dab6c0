"""The signed edge against an adversary: replays through the nonce/timestamp boundary,
refusals that cost no database write, bounded bodies, and top-level nulls that cannot change a
field's meaning."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx2 as httpx
import pytest

from identity.app import create_app
from identity.db import Database
from identity.marketplace.signing import Kind, sign, sign_body
from identity.models import Department, Instance, MarketplaceCall, Nonce
from identity.settings import Settings
from tests.helpers.kit_bodies import all_org_body, count, kit_ok, one, org, stamp, tenant_body
from tests.helpers.marketplace_client import BASIC_KEY, KIT_KEY, SignedCalls, now_ms
from tests.helpers.servers import METRICS_AUTH

OK, FAILED, INVALID = "000000", "000001", "000002"
NEW = {"activity": "newInstance", "orderId": "O1", "orderLineId": "L1", "businessId": "b1"}


async def _status(db: Database, instance_id: str) -> str:
    row = await one(db, Instance, Instance.instance_id == instance_id)
    return str(row.status)


def _nonce_ending_in_zero() -> str:
    return uuid.uuid4().hex[:31] + "0"


async def test_nonce_and_timestamp_boundary_cannot_be_shifted(
    marketplace: SignedCalls, db: Database
) -> None:
    """Moving the nonce's trailing 0 into the timestamp keeps the signed string, and so the
    signature; it must not make a captured FREEZE new again after an UNFREEZE."""
    created = await marketplace.basic(NEW)
    instance_id = created["instanceId"]
    freeze = {"activity": "updateInstanceStatus", "instanceId": instance_id, "status": "FREEZE"}
    nonce, ts = _nonce_ending_in_zero(), now_ms()
    signature = sign_body(Kind.BASIC, BASIC_KEY, nonce, ts, json.dumps(freeze).encode())
    assert (await marketplace.basic(freeze, nonce=nonce, timestamp=ts))["resultCode"] == OK
    unfreeze = {**freeze, "status": "UNFREEZE"}
    assert (await marketplace.basic(unfreeze))["resultCode"] == OK

    replay = await marketplace.basic(
        freeze, nonce=nonce[:-1], timestamp="0" + ts, signature=signature
    )
    assert replay["resultCode"] == INVALID, replay
    assert await _status(db, instance_id) == "active"


@pytest.mark.parametrize(
    "timestamp",
    [
        pytest.param(lambda ts: "0" + ts, id="leading-zero"),
        pytest.param(lambda ts: "+" + ts, id="plus-sign"),
        pytest.param(lambda ts: ts + "0", id="14-digits"),
        pytest.param(lambda ts: " " + ts, id="space"),
        pytest.param(lambda ts: "١" * 13, id="arabic-indic-digits"),
    ],
)
async def test_only_the_marketplace_timestamp_form_is_accepted(
    marketplace: SignedCalls, db: Database, timestamp: Any
) -> None:
    # Basic calls carry it in the query string, where any character can be sent.
    reply = await marketplace.basic(NEW, timestamp=timestamp(now_ms()))
    assert reply["resultCode"] == INVALID, reply
    assert await count(db, Nonce) == 0


@pytest.mark.parametrize(
    "nonce",
    ["short", "a" * 65, "abc-def-ghi-jkl-mno", "0123456789abcdef\u00e9", "0123456789 abcdef"],
)
async def test_only_nonces_of_the_documented_shape_are_accepted(
    marketplace: SignedCalls, db: Database, nonce: str
) -> None:
    reply = await marketplace.basic(NEW, nonce=nonce)
    assert reply["resultCode"] == INVALID, reply
    assert "nonce" in reply["resultMsg"]
    assert await count(db, Nonce) == 0


@pytest.mark.parametrize(
    "nonce",
    [
        "RLLUammMSInlrNWb",
        "Of4lsV7H1qrzVDI52O5CFk2ofPcZRaA6",
        "9047C93149A64CA6B2E3EE2FE92C11D6" * 2,
    ],
)
async def test_the_documented_nonce_examples_are_accepted(
    marketplace: SignedCalls, nonce: str
) -> None:
    assert (await marketplace.kit("tenantSync", tenant_body(), nonce=nonce))["resultCode"] == OK


async def test_refusals_before_the_signature_write_nothing(
    client: httpx.AsyncClient, marketplace: SignedCalls, db: Database
) -> None:
    """Unsigned, forged or malformed calls are logged and counted, never written."""
    forged = {"signature": "ab" * 32}
    for _ in range(5):
        reply = await marketplace.kit("tenantSync", tenant_body(), **forged)
        assert reply["resultCode"] == FAILED
        assert (await marketplace.basic({"activity": "x"}, timestamp="1"))["resultCode"] == INVALID
        assert (await marketplace.kit("nope", tenant_body(), nonce="bad"))["resultCode"] == INVALID
    assert await count(db, MarketplaceCall) == 0
    assert await count(db, Nonce) == 0
    metrics = (await client.get("/metrics", headers=METRICS_AUTH)).text
    assert 'identity_marketplace_calls_total{interface="tenantSync",result_code="000001"} 5.0' in (
        metrics
    )
    # A signed call still leaves its audit row.
    await kit_ok(marketplace, "tenantSync", tenant_body())
    assert await count(db, MarketplaceCall) == 1


async def test_a_body_over_the_limit_is_refused_unread(
    marketplace: SignedCalls, db: Database
) -> None:
    huge = tenant_body(name="x" * (1024 * 1024))
    reply = await marketplace.kit("tenantSync", huge)
    assert reply["resultCode"] == INVALID, reply
    assert "exceeds" in reply["resultMsg"]
    assert await count(db, MarketplaceCall) == 0


async def test_many_top_level_members_are_refused(marketplace: SignedCalls, db: Database) -> None:
    padded = {**tenant_body(), **{f"k{i}": i for i in range(100)}}
    forged = await marketplace.kit("tenantSync", padded, signature="ab" * 32)
    assert forged["resultCode"] == FAILED, forged
    signed = await marketplace.kit("tenantSync", padded)
    assert signed["resultCode"] == INVALID, signed
    assert await count(db, MarketplaceCall) == 1  # the signed one only


async def test_deep_nesting_is_refused(marketplace: SignedCalls) -> None:
    deep: Any = 1
    for _ in range(20):
        deep = [deep]
    reply = await marketplace.kit("tenantSync", tenant_body(extra=deep))
    assert reply["resultCode"] == INVALID, reply


async def test_large_bodies_are_checked_in_the_verifier_process(
    marketplace: SignedCalls, db: Database
) -> None:
    """Above the inline size the signature is checked in another process: a forged large body
    is refused, a signed one (padded in the raw body and, separately, canonically) is applied."""
    big_list = [org(f"d{i:05d}", name="部门" * 20) for i in range(1500)]
    body = all_org_body(big_list)
    raw = json.dumps(body, ensure_ascii=False).encode()
    assert len(raw) > 64 * 1024
    await kit_ok(marketplace, "tenantSync", tenant_body())
    forged = await marketplace.kit("allOrgSync", body, signature="cd" * 32)
    assert forged["resultCode"] == FAILED, forged
    assert (await marketplace.kit("allOrgSync", body))["resultCode"] == OK
    assert await count(db, Department) == 1500
    spaced = json.dumps(all_org_body(big_list[:1000], timeStamp=stamp(2)), indent=2).encode()
    nonce, ts = uuid.uuid4().hex, now_ms()
    signature = sign(Kind.KIT, KIT_KEY, nonce, ts, spaced)
    reply = await marketplace.kit(
        "allOrgSync", spaced, nonce=nonce, timestamp=ts, signature=signature
    )
    assert reply["resultCode"] == OK, reply
    assert await count(db, Department, Department.state == "active") == 1000


async def test_an_added_top_level_null_changes_no_field(
    marketplace: SignedCalls, db: Database
) -> None:
    """`{"orgInfo": "[…]"}` (the V1 name) signed canonically still verifies with
    `"orgInfoList": null` added; the list must still be read from `orgInfo`."""
    await kit_ok(marketplace, "tenantSync", tenant_body())
    body = all_org_body(None)
    del body["orgInfoList"]
    body["orgInfo"] = json.dumps([org("10"), org("11", "10")])
    nonce, ts = uuid.uuid4().hex, now_ms()
    signature = sign_body(Kind.KIT, KIT_KEY, nonce, ts, json.dumps(body).encode())
    tampered = json.dumps({**body, "orgInfoList": None}).encode()
    reply = await marketplace.kit(
        "allOrgSync", tampered, nonce=nonce, timestamp=ts, signature=signature
    )
    assert reply["resultCode"] == OK, reply
    assert await count(db, Department) == 2


async def test_a_flood_of_forged_large_bodies_does_not_refuse_the_marketplaces_calls(
    settings: Settings, db: Database
) -> None:
    """Forged bodies of the maximum size from one address are checked one at a time, at most
    four waiting (the rest are told to retry); a large call from the marketplace's address,
    signed over its canonical form but sent otherwise, still gets its turn."""
    app = create_app(settings)

    def client_at(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url=settings.base_url, timeout=60)

    forged_body = json.dumps({f"k{i}": "x" * 8 for i in range(60_000)}).encode()[:1_000_000]
    async with client_at("198.51.100.7") as attacker, client_at("192.0.2.1") as kooGallery:
        marketplace = SignedCalls(kooGallery)
        await kit_ok(marketplace, "tenantSync", tenant_body())

        async def forged() -> str:
            headers = {"x-sign": "ab" * 32, "x-timestamp": now_ms(), "x-nonce": uuid.uuid4().hex}
            answer = await attacker.post(
                "/koogallery/produceAPI/v2/authSync", content=forged_body, headers=headers
            )
            return str(answer.json()["resultCode"])

        big = all_org_body([org(f"d{i:05d}", name="部门" * 20) for i in range(1500)])
        spaced = json.dumps(big, indent=2).encode()  # not the canonical form: the worker checks
        nonce, ts = uuid.uuid4().hex, now_ms()
        signature = sign_body(Kind.KIT, KIT_KEY, nonce, ts, spaced)
        real = marketplace.kit("allOrgSync", spaced, nonce=nonce, timestamp=ts, signature=signature)
        *flood, answer = await asyncio.gather(*(forged() for _ in range(8)), real)
    await app.state.db.dispose()
    app.state.marketplace.verifier.close()
    assert answer["resultCode"] == OK, answer
    assert sorted(flood) == ["000001"] * 4 + ["000005"] * 4
    assert await count(db, Department) == 1500
