"""newInstance with the query-order API configured: the order confirmed and kept with the
instance, refused (nothing provisioned), or not known in time (000004, pending, confirmed later
by the worker), against the simulator's signed stand-in over real HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from pydantic import SecretStr

from identity.crypto import Cipher
from identity.db import Database
from identity.marketplace import order_details
from identity.marketplace.orders import OrderApi
from identity.models import Instance, MarketplaceCall
from identity.settings import Settings
from identity.simulator.authcentre import create_auth_centre
from identity.simulator.order_api import DEMO_KEY
from tests.helpers.auth_centres import auth_centre, identity_with, silent_auth_centre
from tests.helpers.demo_process import identity as identity_cli
from tests.helpers.kit_bodies import one, rows
from tests.helpers.marketplace_client import SECRET_KEY, SignedCalls
from tests.helpers.servers import METRICS_TOKEN, serving_here
from tests.helpers.simulator_world import world

ACME = world().tenant("acme").order
OK, IN_PROGRESS, INTERNAL, NOT_FOUND = "000000", "000004", "000005", "000003"


@pytest.fixture
async def simulator() -> AsyncIterator[str]:
    """The simulator's auth centre, which also serves the query-order API, over real HTTP."""
    async with serving_here(create_auth_centre(world(), callback_base="http://127.0.0.1:9")) as url:
        yield url


def _with_api(url: str, **more: Any) -> dict[str, Any]:
    return {
        "marketplace_ak": DEMO_KEY.ak,
        "marketplace_sk": SecretStr(DEMO_KEY.sk),
        "marketplace_api_url": url,
        "marketplace_api_timeout_seconds": 1.0,
        **more,
    }


async def _new_instance(identity: httpx.AsyncClient, order: str, line: str) -> dict[str, Any]:
    body = {"activity": "newInstance", "orderId": order, "orderLineId": line, "businessId": "b1"}
    return await SignedCalls(identity).basic(body)


async def _query(identity: httpx.AsyncClient, instance_id: str) -> dict[str, Any]:
    return await SignedCalls(identity).basic(
        {"activity": "queryInstance", "instanceId": instance_id}
    )


async def _instance(db: Database, instance_id: str) -> Instance:
    return await one(db, Instance, Instance.instance_id == instance_id)  # type: ignore[no-any-return]


async def test_a_confirmed_order_is_kept_with_its_instance(
    settings: Settings, db: Database, simulator: str
) -> None:
    async with identity_with(settings, **_with_api(simulator)) as identity:
        reply = await _new_instance(identity, ACME.order_id, ACME.order_line_id)
        listed = await _query(identity, reply["instanceId"])
    assert reply["resultCode"] == OK, reply
    assert listed["info"][0]["instanceId"] == reply["instanceId"]
    instance = await _instance(db, reply["instanceId"])
    assert instance.order_state == "confirmed"
    assert instance.product_id == ACME.product_id and instance.expire_time is not None
    async with db.read() as session:
        order = await order_details.order_of(session, Cipher(SECRET_KEY), reply["instanceId"])
    assert order is not None and order["orderId"] == ACME.order_id
    assert order["buyerInfo"]["customerId"]
    assert instance.order_enc is not None and b"customerId" not in instance.order_enc  # sealed


async def test_an_order_the_api_does_not_know_provisions_nothing(
    settings: Settings, db: Database, simulator: str
) -> None:
    async with identity_with(settings, **_with_api(simulator)) as identity:
        reply = await _new_instance(identity, "CS-NOBODY", "CS-NOBODY-1")
    assert reply["resultCode"] == INTERNAL and "order" in reply["resultMsg"], reply
    assert "instanceId" not in reply
    assert await rows(db, Instance) == []
    audited = await rows(db, MarketplaceCall)
    assert [(c.interface, c.result_code) for c in audited] == [("newInstance", INTERNAL)]


async def test_an_order_not_known_in_time_is_pending_then_confirmed_by_the_worker(
    settings: Settings, db: Database, simulator: str
) -> None:
    with silent_auth_centre() as silent:
        async with identity_with(settings, **_with_api(silent.url)) as identity:
            reply = await _new_instance(identity, ACME.order_id, ACME.order_line_id)
            waiting = await _query(identity, reply["instanceId"])
    assert reply["resultCode"] == IN_PROGRESS and reply["instanceId"], reply
    assert waiting == {"resultCode": OK, "resultMsg": "success.", "info": []}
    pending = await _instance(db, reply["instanceId"])
    assert pending.order_state == "pending" and pending.order_next_at is not None
    assert "within 1 s" in (pending.order_error or "")

    # Due at once (a test does not wait the 20 s): the worker asks the API that now answers.
    async with db.transaction() as session:
        found = await session.get(Instance, reply["instanceId"])
        assert found is not None
        found.order_next_at = found.created_at
    api = OrderApi(DEMO_KEY, [simulator], timeout=5)
    try:
        counts = await order_details.confirm_due(db, Cipher(SECRET_KEY), api)
    finally:
        await api.close()
    assert counts["confirmed"] == 1
    async with identity_with(settings, **_with_api(simulator)) as identity:
        listed = await _query(identity, reply["instanceId"])
        retried = await _new_instance(identity, ACME.order_id, ACME.order_line_id)
    assert listed["info"][0]["instanceId"] == reply["instanceId"]
    assert retried == {"resultCode": OK, "resultMsg": "success.", "instanceId": reply["instanceId"]}


async def test_our_refused_key_is_in_progress_and_retried_not_the_orders_fault(
    settings: Settings, db: Database, simulator: str
) -> None:
    wrong = {"marketplace_sk": SecretStr("not-the-simulator-secret-key")}
    async with identity_with(settings, **_with_api(simulator, **wrong)) as identity:
        reply = await _new_instance(identity, ACME.order_id, ACME.order_line_id)
        auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        scraped = (await identity.get("/metrics", headers=auth)).text
    assert reply["resultCode"] == IN_PROGRESS, reply
    assert 'identity_marketplace_order_queries_total{outcome="credentials"} 1.0' in scraped
    pending = await _instance(db, reply["instanceId"])
    assert pending.order_state == "pending" and "APIGW" in (pending.order_error or "")


async def test_a_worker_gives_up_after_the_marketplaces_three_hours(
    settings: Settings, db: Database
) -> None:
    with silent_auth_centre() as silent:
        async with identity_with(settings, **_with_api(silent.url)) as identity:
            reply = await _new_instance(identity, ACME.order_id, ACME.order_line_id)
        async with db.transaction() as session:
            found = await session.get(Instance, reply["instanceId"])
            assert found is not None
            found.created_at = found.created_at - order_details.RETRY_FOR
            found.order_next_at = found.created_at
        api = OrderApi(DEMO_KEY, [silent.url], timeout=0.3)
        try:
            counts = await order_details.confirm_due(db, Cipher(SECRET_KEY), api)
        finally:
            await api.close()
    assert counts["given_up"] == 1
    assert (await _instance(db, reply["instanceId"])).order_state == "given_up"


async def test_a_debug_call_and_an_unconfigured_service_do_not_ask(
    settings: Settings, db: Database
) -> None:
    with auth_centre(userinfo=(500, "")) as counting:
        async with identity_with(settings, **_with_api(counting.url)) as identity:
            body = {"activity": "newInstance", "orderId": "D1", "orderLineId": "D1-1",
                    "businessId": "d1", "testFlag": "1"}  # fmt: skip
            debug = await SignedCalls(identity).basic(body)
        async with identity_with(settings) as identity:
            plain = await _new_instance(identity, "P1", "P1-1")
        assert counting.script.requests == 0
    assert debug["resultCode"] == OK and plain["resultCode"] == OK
    assert (await _instance(db, plain["instanceId"])).order_state is None


def test_the_order_of_the_simulator_is_the_marketplaces_shape() -> None:
    """The stand-in answers as the marketplace's documented example does (keys and types)."""
    from identity.simulator.order_api import order_info

    info = order_info(world().tenant("acme"))
    assert set(info) == {"orderId", "orderType", "createTime", "orderLine", "buyerInfo",
                         "extendParams"}  # fmt: skip
    line = info["orderLine"][0]
    assert {"orderLineId", "chargingMode", "periodType", "periodNumber", "expireTime",
            "productInfo"} <= set(line)  # fmt: skip
    assert json.dumps(info)  # plain JSON


def test_the_demo_shows_who_bought_its_instance(demo: dict[str, str]) -> None:
    """`identity tenants show` lists the instance with its product, expiry and order state;
    `identity instances show` the order as the simulator's order API gave it."""
    folder = demo["folder"]
    shown = identity_cli(Path(folder), "tenants", "show", "acme", "--demo-dir", folder)
    assert shown.returncode == 0, shown.stderr
    [instance] = json.loads(shown.stdout)["instances"]
    assert instance["orderState"] == "confirmed"
    assert instance["productId"] and instance["expireTime"]
    detail = identity_cli(
        Path(folder), "instances", "show", instance["instanceId"], "--json", "--demo-dir", folder
    )
    assert detail.returncode == 0, detail.stderr
    order = json.loads(detail.stdout)["order"]
    assert order["orderLine"][0]["orderLineId"] == instance["orderLineId"]
    assert order["buyerInfo"]["customerId"]
    missing = identity_cli(Path(folder), "instances", "show", "no-such", "--demo-dir", folder)
    assert missing.returncode == 1 and "no instance no-such" in missing.stderr
    # The marketplace's retry of the purchase: the same instance, the order asked no more.
    again = identity_cli(Path(folder), "simulate", "new-instance", "acme", "--demo-dir", folder)
    assert again.returncode == 0, again.stderr
    assert f"000000 success. instanceId={instance['instanceId']}" in again.stdout
