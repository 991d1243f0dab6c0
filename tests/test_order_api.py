"""The marketplace's query-order open API: identity's signed client against the simulator's
stand-in over real HTTP, the APIG signature against the documented algorithm, and what each
kind of answer means for a newInstance."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import quote

import httpx2 as httpx
import pytest

from identity.marketplace.orders import (
    QUERY_PATH,
    AccessKey,
    Kind,
    OrderApi,
    judge,
    signed_request,
)
from identity.simulator.authcentre import create_auth_centre
from identity.simulator.order_api import DEMO_KEY
from tests.helpers.auth_centres import auth_centre, silent_auth_centre
from tests.helpers.servers import free_port, serving_here
from tests.helpers.simulator_world import world

KEY = AccessKey("HPUAXXXXXXXXXXXXXXXX", "s3cr3t-access-key-for-tests-0123456789")
MOMENT = datetime(2026, 12, 6, 9, 30, 5, tzinfo=UTC)
ACME = world().tenants[0].order


def _documented_signature(key: AccessKey, host: str, query: list[tuple[str, str]]) -> str:
    """APIG's SDK-HMAC-SHA256, written out from Huawei Cloud's description of it: the canonical
    request (method, the path with a trailing slash, the sorted and percent-encoded query, the
    signed headers lower-cased and sorted as `name:value` lines, their names, the body's
    SHA-256), its SHA-256 in the string to sign with the algorithm and the date, and the
    HMAC-SHA256 of that under the secret key, in hex."""
    date = MOMENT.strftime("%Y%m%dT%H%M%SZ")
    headers = {"content-type": "application/json", "host": host, "x-sdk-date": date}
    names = sorted(headers)
    canonical = "\n".join(
        [
            "GET",
            QUERY_PATH + "/",
            "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(query)),
            "".join(f"{name}:{headers[name]}\n" for name in names),
            ";".join(names),
            hashlib.sha256(b"").hexdigest(),
        ]
    )
    to_sign = f"SDK-HMAC-SHA256\n{date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(key.sk.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"SDK-HMAC-SHA256 Access={key.ak}, SignedHeaders={';'.join(names)}, Signature={signature}"
    )


def test_the_signature_is_apigs_documented_one() -> None:
    query = [("orderLineId", "CS2211181819B4LVS-000001"), ("orderId", "CS2211181819B4LVS")]
    url, headers = signed_request(KEY, "https://mkt.myhuaweicloud.com" + QUERY_PATH, query, MOMENT)
    assert headers["X-Sdk-Date"] == "20261206T093005Z"
    assert headers["Authorization"] == _documented_signature(KEY, "mkt.myhuaweicloud.com", query)
    # The query is sent in the order and encoding it was signed in.
    assert url == (
        "https://mkt.myhuaweicloud.com/api/mkp-openapi-public/global/v1/order/query"
        "?orderId=CS2211181819B4LVS&orderLineId=CS2211181819B4LVS-000001"
    )
    # A fixed vector: an upgrade of the signer that changed its output would fail here.
    assert headers["Authorization"].endswith(
        "Signature=52c5389e30f198dfd1a4b7c8acb56bc4b91882b6b2f177fe9b2c0f088d18954d"
    )


def test_a_value_that_needs_encoding_is_signed_as_sent() -> None:
    query = [("orderId", "a b/ü~"), ("orderLineId", "x+y")]
    url, headers = signed_request(KEY, "https://api.example" + QUERY_PATH, query, MOMENT)
    assert url.endswith("?orderId=a%20b%2F%C3%BC~&orderLineId=x%2By")
    assert headers["Authorization"] == _documented_signature(KEY, "api.example", query)


def _answer(order: dict[str, object] | None, code: str = "MKT.0000") -> bytes:
    body: dict[str, object] = {"resultCode": code, "resultMsg": "x"}
    if order is not None:
        body["orderInfo"] = order
    return json.dumps(body).encode()


LINE = {"orderLineId": "O-1-1", "productInfo": [{"productId": "P"}]}
OTHER_LINE = {**LINE, "orderLineId": "O-1-2"}
GATEWAY_REFUSAL = b'{"error_code":"APIGW.0301","error_msg":"verify aksk signature fail"}'


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (200, _answer({"orderId": "O-1", "orderLine": [LINE]}), Kind.CONFIRMED),
        (200, _answer(None, "MKT.0100"), Kind.REFUSED),
        (200, _answer(None), Kind.REFUSED),
        (200, _answer({"orderId": "O-2", "orderLine": [LINE]}), Kind.REFUSED),
        (200, _answer({"orderId": "O-1", "orderLine": [OTHER_LINE]}), Kind.REFUSED),
        (200, _answer({"orderId": "O-1", "orderLine": "no list"}), Kind.REFUSED),
        (401, GATEWAY_REFUSAL, Kind.CREDENTIALS),
        (403, b"", Kind.CREDENTIALS),
        (200, _answer(None, "MKT.0151"), Kind.CREDENTIALS),
        (400, b'{"error_code":"APIGW.0101"}', Kind.CREDENTIALS),
        (503, b"<html>busy</html>", Kind.UNAVAILABLE),
        (500, _answer(None, "MKT.9999"), Kind.UNAVAILABLE),
        (200, b"not json", Kind.UNAVAILABLE),
        (200, b"[]", Kind.UNAVAILABLE),
    ],
)  # fmt: skip
def test_what_an_answer_means(status: int, body: bytes, kind: Kind) -> None:
    outcome = judge(status, body, "O-1", "O-1-1")
    assert outcome.kind is kind, outcome.detail
    assert (outcome.order is not None) == (kind is Kind.CONFIRMED)
    assert outcome.retry == (kind in (Kind.CREDENTIALS, Kind.UNAVAILABLE))


@pytest.fixture
async def simulator() -> AsyncIterator[str]:
    """The simulator's auth centre, which also serves the query-order API, over real HTTP."""
    async with serving_here(create_auth_centre(world(), callback_base="http://127.0.0.1:9")) as url:
        yield url


async def test_the_simulator_confirms_its_order_to_a_signed_query(simulator: str) -> None:
    api = OrderApi(DEMO_KEY, [simulator], timeout=5)
    try:
        outcome = await api.query(ACME.order_id, ACME.order_line_id)
    finally:
        await api.close()
    assert outcome.kind is Kind.CONFIRMED, outcome.detail
    assert outcome.order is not None
    [line] = outcome.order["orderLine"]
    assert line["orderLineId"] == ACME.order_line_id
    assert line["productInfo"][0]["productId"] == ACME.product_id
    assert outcome.order["buyerInfo"]["customerId"]


async def test_the_simulator_knows_no_other_order(simulator: str) -> None:
    api = OrderApi(DEMO_KEY, [simulator], timeout=5)
    try:
        outcome = await api.query("CS-NOBODY", "CS-NOBODY-1")
    finally:
        await api.close()
    assert outcome.kind is Kind.REFUSED


async def test_the_simulator_refuses_another_key_and_a_tampered_query(simulator: str) -> None:
    api = OrderApi(AccessKey(DEMO_KEY.ak, "not-the-secret-key-0000000000"), [simulator], timeout=5)
    try:
        assert (await api.query(ACME.order_id, ACME.order_line_id)).kind is Kind.CREDENTIALS
    finally:
        await api.close()
    url, headers = signed_request(DEMO_KEY, simulator + QUERY_PATH, [("orderId", ACME.order_id)])
    async with httpx.AsyncClient() as http:
        tampered = await http.get(url.replace(ACME.order_id, "CS-OTHER"), headers=headers)
        stale = signed_request(
            DEMO_KEY, simulator + QUERY_PATH, [("orderId", ACME.order_id)],
            datetime.fromtimestamp(time.time() - 3600, UTC),
        )  # fmt: skip
        late = await http.get(stale[0], headers=stale[1])
        good = await http.get(url, headers=headers)
    assert tampered.status_code == 401
    assert tampered.json()["error_code"] == "APIGW.0301"
    assert late.status_code == 401
    assert good.status_code == 200 and good.json()["resultCode"] == "MKT.0000"


async def test_a_silent_api_is_unavailable_within_the_deadline() -> None:
    with silent_auth_centre() as silent:
        api = OrderApi(DEMO_KEY, [silent.url], timeout=0.5)
        started = time.monotonic()
        try:
            outcome = await api.query("O-1", "O-1-1")
        finally:
            await api.close()
    assert outcome.kind is Kind.UNAVAILABLE
    assert "0.5 s" in outcome.detail
    assert time.monotonic() - started < 2


async def test_the_fallback_is_asked_only_when_the_first_gives_no_answer(simulator: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    api = OrderApi(DEMO_KEY, [closed, simulator], timeout=5)
    try:
        assert (await api.query(ACME.order_id, ACME.order_line_id)).kind is Kind.CONFIRMED
    finally:
        await api.close()
    # A refusal is an answer: the second domain is not asked.
    with auth_centre(userinfo=(200, '{"resultCode":"MKT.0404","resultMsg":"no"}')) as first:
        api = OrderApi(DEMO_KEY, [first.url, simulator], timeout=5)
        try:
            assert (await api.query(ACME.order_id, ACME.order_line_id)).kind is Kind.REFUSED
        finally:
            await api.close()
        assert first.script.requests == 1
