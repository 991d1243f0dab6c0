"""Basic (order / instance) callbacks, `POST /koogallery` (contract §4): every value a string,
dispatched on `activity`, answered with `{resultCode, resultMsg}`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from identity.db import Database
from identity.models import AccessRevocation, Instance
from identity.settings import Settings
from tests.helpers.kit_bodies import kit_ok, one, rows, sender_for, tenant_body
from tests.helpers.marketplace_client import SignedCalls

OK, INVALID, NOT_FOUND = "000000", "000002", "000003"
LOGIN_URL = "https://identity.example.com/sso/login"
UNKNOWN = "no-such-instance"


async def activity(marketplace: SignedCalls, name: str, **fields: Any) -> dict[str, Any]:
    return await marketplace.basic({"activity": name, **fields})


async def new_instance(
    marketplace: SignedCalls,
    order: str = "O1",
    line: str = "O1-1",
    business: str = "b1",
    **extra: Any,
) -> dict[str, Any]:
    return await activity(
        marketplace, "newInstance", orderId=order, orderLineId=line, businessId=business, **extra
    )


async def created(marketplace: SignedCalls, **kw: Any) -> str:
    reply = await new_instance(marketplace, **kw)
    assert reply["resultCode"] == OK, reply
    return str(reply["instanceId"])


async def instances(db: Database) -> list[Instance]:
    return await rows(db, Instance)


async def instance(db: Database, instance_id: str) -> Instance:
    return await one(db, Instance, Instance.instance_id == instance_id)  # type: ignore[no-any-return]


async def query(marketplace: SignedCalls, *ids: str) -> dict[str, Any]:
    return await activity(marketplace, "queryInstance", instanceId=",".join(ids))


def info_for(*ids: str, url: str = LOGIN_URL) -> list[dict[str, Any]]:
    return [{"instanceId": i, "appInfo": {"frontEndUrl": url}} for i in ids]


@pytest.fixture
async def iid(marketplace: SignedCalls) -> str:
    """An instance created by a real newInstance."""
    return await created(marketplace)


# --- newInstance ----------------------------------------------------------------------------


async def test_new_instance_is_idempotent_per_order_line(
    marketplace: SignedCalls, db: Database
) -> None:
    first = await new_instance(marketplace, business="b1")
    retry = await new_instance(marketplace, business="b2")  # a retry carries a new businessId
    assert first["resultCode"] == retry["resultCode"] == OK
    assert first["resultMsg"] == "success."
    assert first["instanceId"] and retry["instanceId"] == first["instanceId"]
    rows = await instances(db)
    assert [(r.instance_id, r.order_id, r.order_line_id) for r in rows] == [
        (first["instanceId"], "O1", "O1-1")
    ]
    assert rows[0].status == "active"


async def test_new_instance_per_order_line_gets_its_own_id(
    marketplace: SignedCalls, db: Database
) -> None:
    ids = {
        await created(marketplace, line="O1-1"),
        await created(marketplace, line="O1-2"),
        await created(marketplace, order="O2", line="O1-1"),
    }
    assert len(ids) == 3
    assert {r.instance_id for r in await instances(db)} == ids


@pytest.mark.parametrize(("flag", "rows"), [("1", 0), ("0", 1), ("", 1)])
async def test_new_instance_test_flag(
    marketplace: SignedCalls, db: Database, flag: str, rows: int
) -> None:
    """The instanceId is the first request's businessId (§4.2); a debug order creates nothing."""
    reply = await new_instance(marketplace, business="debug-business-id", testFlag=flag)
    assert reply["resultCode"] == OK, reply
    assert reply["instanceId"] == "debug-business-id"
    assert len(await instances(db)) == rows


async def test_a_debug_order_for_a_known_line_answers_its_instance(
    marketplace: SignedCalls, db: Database
) -> None:
    real = await created(marketplace, line="L1")
    reply = await new_instance(marketplace, line="L1", business="another", testFlag="1")
    assert reply["instanceId"] == real
    assert len(await instances(db)) == 1


# --- queryInstance --------------------------------------------------------------------------


async def test_query_known_instances(marketplace: SignedCalls) -> None:
    a = await created(marketplace, line="L1")
    b = await created(marketplace, line="L2")
    reply = await query(marketplace, b, a)
    assert reply["resultCode"] == OK, reply
    assert reply["info"] == info_for(b, a)


async def test_query_front_end_url_is_configurable(settings: Settings, db: Database) -> None:
    url = "https://app.example.org/start"
    async with sender_for(settings.model_copy(update={"frontend_url": url})) as (sender, _):
        iid = await created(sender)
        assert (await query(sender, iid))["info"] == info_for(iid, url=url)


async def test_query_mixed_returns_only_known(marketplace: SignedCalls, iid: str) -> None:
    reply = await query(marketplace, UNKNOWN, iid, "another-unknown")
    assert reply["resultCode"] == OK, reply
    assert reply["info"] == info_for(iid)


@pytest.mark.parametrize(("count", "code"), [(101, INVALID), (100, NOT_FOUND), (1, NOT_FOUND)])
async def test_query_limits_and_unknown_ids(
    marketplace: SignedCalls, count: int, code: str
) -> None:
    """At most 100 ids (§4.3); ids none of which exist are 000003."""
    reply = await query(marketplace, *(f"unknown-{n}" for n in range(count)))
    assert reply["resultCode"] == code, reply
    assert "info" not in reply


async def test_query_more_than_100_ids_fails_even_when_known(
    marketplace: SignedCalls, iid: str
) -> None:
    reply = await query(marketplace, iid, *(f"unknown-{n}" for n in range(100)))
    assert reply["resultCode"] == INVALID, reply


# --- refreshInstance ------------------------------------------------------------------------


async def refresh(marketplace: SignedCalls, instance_id: str, **fields: Any) -> dict[str, Any]:
    body = {
        "instanceId": instance_id,
        "scene": "RENEWAL",
        "orderId": "O2",
        "orderLineId": "O2-1",
        "expireTime": "20300102030405",
        **fields,
    }
    return await activity(marketplace, "refreshInstance", **body)


@pytest.mark.parametrize(
    "scene", ["TRIAL_TO_FORMAL", "RENEWAL", "UNSUBSCRIBE_RENEWAL_PERIOD", "RENEWAL_CHANGE"]
)
async def test_refresh_scenes(marketplace: SignedCalls, db: Database, iid: str, scene: str) -> None:
    reply = await refresh(marketplace, iid, scene=scene, productId="P2")
    assert reply == {"resultCode": OK, "resultMsg": "success."}
    row = await instance(db, iid)
    assert row.expire_time == datetime(2030, 1, 2, 3, 4, 5)
    assert (row.last_order_id, row.last_order_line_id, row.product_id) == ("O2", "O2-1", "P2")
    assert row.status == "active"


@pytest.mark.parametrize(
    ("expire", "stored"),
    [
        ("20300102030405", datetime(2030, 1, 2, 3, 4, 5)),
        ("20221124023618256", datetime(2022, 11, 24, 2, 36, 18, 256000)),
    ],
)
async def test_refresh_stores_14_and_17_digit_expiry(
    marketplace: SignedCalls, db: Database, iid: str, expire: str, stored: datetime
) -> None:
    assert (await refresh(marketplace, iid, expireTime=expire))["resultCode"] == OK
    assert (await instance(db, iid)).expire_time == stored


async def test_refresh_moves_expiry_back(marketplace: SignedCalls, db: Database, iid: str) -> None:
    await refresh(marketplace, iid, expireTime="20310101000000")
    await refresh(marketplace, iid, scene="UNSUBSCRIBE_RENEWAL_PERIOD", expireTime="20300101000000")
    assert (await instance(db, iid)).expire_time == datetime(2030, 1, 1)


@pytest.mark.parametrize(
    "fields",
    [
        {"expireTime": "2030010203040"},  # 13 digits
        {"expireTime": "203001020304050"},  # 15 digits
        {"expireTime": "20301302030405"},  # month 13
        {"expireTime": "2030-01-02T03:04"},
        {"expireTime": ""},
        {"expireTime": 20300102030405},  # a number, not a string
        {"scene": "RENEW"},
        {"scene": "renewal"},
        {"orderId": ""},
    ],
)
async def test_refresh_invalid_changes_nothing(
    marketplace: SignedCalls, db: Database, iid: str, fields: dict[str, Any]
) -> None:
    reply = await refresh(marketplace, iid, **fields)
    assert reply["resultCode"] == INVALID, reply
    row = await instance(db, iid)
    assert (row.expire_time, row.last_order_id, row.product_id) == (None, None, None)


# --- updateInstanceStatus, releaseInstance, upgradeInstance --------------------------------


async def set_status(
    marketplace: SignedCalls, instance_id: str, status: str, **extra: Any
) -> dict[str, Any]:
    return await activity(
        marketplace, "updateInstanceStatus", instanceId=instance_id, status=status, **extra
    )


async def release(marketplace: SignedCalls, instance_id: str, **extra: Any) -> dict[str, Any]:
    return await activity(marketplace, "releaseInstance", instanceId=instance_id, **extra)


async def upgrade(marketplace: SignedCalls, instance_id: str, **extra: Any) -> dict[str, Any]:
    return await activity(
        marketplace,
        "upgradeInstance",
        instanceId=instance_id,
        orderId="O3",
        orderLineId="O3-1",
        **extra,
    )


async def status_of(db: Database, instance_id: str) -> str:
    return (await instance(db, instance_id)).status


async def test_freeze_and_unfreeze(marketplace: SignedCalls, db: Database, iid: str) -> None:
    for status, stored in [("FREEZE", "frozen"), ("FREEZE", "frozen"), ("UNFREEZE", "active")]:
        assert (await set_status(marketplace, iid, status))["resultCode"] == OK
        assert await status_of(db, iid) == stored


@pytest.mark.parametrize("status", ["PAUSE", "freeze", ""])
async def test_bad_status_is_invalid(
    marketplace: SignedCalls, db: Database, iid: str, status: str
) -> None:
    assert (await set_status(marketplace, iid, status))["resultCode"] == INVALID
    assert await status_of(db, iid) == "active"


async def test_release_is_idempotent(marketplace: SignedCalls, db: Database, iid: str) -> None:
    for _ in range(2):
        assert await release(marketplace, iid) == {"resultCode": OK, "resultMsg": "success."}
        assert await status_of(db, iid) == "released"


@pytest.mark.parametrize("status", ["UNFREEZE", "FREEZE"])
async def test_released_instance_stays_released(
    marketplace: SignedCalls, db: Database, iid: str, status: str
) -> None:
    await release(marketplace, iid)
    assert (await set_status(marketplace, iid, status))["resultCode"] == OK
    assert await status_of(db, iid) == "released"


async def test_upgrade_records_the_order(marketplace: SignedCalls, db: Database, iid: str) -> None:
    assert (await upgrade(marketplace, iid))["resultCode"] == OK
    row = await instance(db, iid)
    assert (row.last_order_id, row.last_order_line_id, row.status) == ("O3", "O3-1", "active")


async def freeze(marketplace: SignedCalls, instance_id: str, **extra: Any) -> dict[str, Any]:
    return await set_status(marketplace, instance_id, "FREEZE", **extra)


LIFECYCLE = [refresh, freeze, release, upgrade]


@pytest.mark.parametrize("action", LIFECYCLE)
async def test_unknown_instance_is_not_found(
    marketplace: SignedCalls, db: Database, iid: str, action: Any
) -> None:
    reply = await action(marketplace, UNKNOWN)
    assert reply["resultCode"] == NOT_FOUND, reply
    assert [r.instance_id for r in await instances(db)] == [iid]


@pytest.mark.parametrize("action", LIFECYCLE)
async def test_debug_calls_change_nothing(
    marketplace: SignedCalls, db: Database, iid: str, action: Any
) -> None:
    """testFlag "1": the real call runs and is rolled back, access ending included; an
    instance no debug newInstance ever stored is answered as if it existed (dial tests)."""
    await kit_ok(marketplace, "tenantSync", tenant_body(instanceId=iid))  # access to end
    assert (await action(marketplace, iid, testFlag="1"))["resultCode"] == OK
    assert (await action(marketplace, UNKNOWN, testFlag="1"))["resultCode"] == OK
    row = await instance(db, iid)
    assert (row.status, row.expire_time, row.last_order_id) == ("active", None, None)
    assert len(await instances(db)) == 1
    assert await rows(db, AccessRevocation) == []


# --- dispatch and types ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["deleteInstance", "NEWINSTANCE", "expireInstance"])
async def test_unknown_activity_is_invalid(marketplace: SignedCalls, name: str) -> None:
    reply = await activity(marketplace, name, instanceId="i1")
    assert reply["resultCode"] == INVALID, reply
    assert name in reply["resultMsg"]


@pytest.mark.parametrize("body", [{"instanceId": "i1"}, {"activity": None}, {"activity": 5}])
async def test_missing_activity_is_invalid(marketplace: SignedCalls, body: dict[str, Any]) -> None:
    reply = await marketplace.basic(body)
    assert reply["resultCode"] == INVALID, reply
    assert "activity" in reply["resultMsg"]


@pytest.mark.parametrize(
    ("name", "fields", "field"),
    [
        ("newInstance", {"orderId": 5, "orderLineId": "L1", "businessId": "b1"}, "orderId"),
        ("newInstance", {"orderId": "O1", "orderLineId": "L1"}, "businessId"),
        ("newInstance", {"orderId": "O1", "orderLineId": "L1", "businessId": ""}, "businessId"),
        (
            "newInstance",
            {"orderId": "O1", "orderLineId": "L1", "businessId": "b1", "testFlag": 1},
            "testFlag",
        ),
        ("queryInstance", {"instanceId": ["i1"]}, "instanceId"),
        ("releaseInstance", {"instanceId": 12345}, "instanceId"),
        ("updateInstanceStatus", {"instanceId": "i1", "status": True}, "status"),
    ],
)
async def test_wrong_type_or_missing_field_is_invalid(
    marketplace: SignedCalls, db: Database, name: str, fields: dict[str, Any], field: str
) -> None:
    reply = await activity(marketplace, name, **fields)
    assert reply["resultCode"] == INVALID, reply
    assert field in reply["resultMsg"]
    assert await instances(db) == []


async def test_a_debug_query_answers_made_up_ids(marketplace: SignedCalls) -> None:
    """The seller's debug flow: a debug newInstance, then a debug query of the id it got."""
    debug = await created(marketplace, business="debug-1", testFlag="1")
    reply = await activity(marketplace, "queryInstance", instanceId=debug, testFlag="1")
    assert reply["resultCode"] == OK, reply
    assert reply["info"] == info_for(debug)
