"""Whatever a caller sends, the marketplace gets HTTP 200 and a JSON result code, never a 500."""

from __future__ import annotations

import asyncio
import json

import httpx2 as httpx
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from identity.app import create_app
from identity.settings import Settings
from tests.helpers.marketplace_client import SignedCalls

KIT_NAMES = ["tenantSync", "applicationSync", "authSync", "singleOrgSync", "allOrgSync"]
EXPECTED = {"000000", "000001", "000002", "000003", "000101"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
kit_keys = st.sampled_from(
    [
        "instanceId",
        "tenantId",
        "appId",
        "flag",
        "testFlag",
        "timeStamp",
        "userList",
        "orgInfoList",
        "orgCode",
        "orgName",
        "clientId",
        "clientSecret",
        "tenantCode",
        "name",
        "domainName",
        "currentSyncTime",
        "parentCode",
        "orderId",
    ]
)
basic_keys = st.sampled_from(
    [
        "activity",
        "orderId",
        "orderLineId",
        "businessId",
        "instanceId",
        "scene",
        "expireTime",
        "status",
        "testFlag",
        "productId",
    ]
)
activities = st.sampled_from(
    [
        "newInstance",
        "queryInstance",
        "refreshInstance",
        "updateInstanceStatus",
        "releaseInstance",
        "upgradeInstance",
        "bogus",
    ]
)


def test_signed_garbage_never_breaks_the_answer(settings: Settings) -> None:
    loop = asyncio.new_event_loop()
    app = create_app(settings)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://x")
    sender = SignedCalls(client)

    @hsettings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        kind=st.sampled_from(["kit", "basic"]),
        name=st.sampled_from(KIT_NAMES),
        activity=activities,
        body=st.one_of(
            st.dictionaries(kit_keys | basic_keys, json_values, max_size=8),
            json_values,
        ),
        raw=st.none() | st.binary(max_size=40),
    )
    def check(kind: str, name: str, activity: str, body: object, raw: bytes | None) -> None:
        if isinstance(body, dict) and kind == "basic":
            body = {"activity": activity, **body}
        payload = raw if raw is not None else json.dumps(body).encode()
        call = sender.kit(name, payload) if kind == "kit" else sender.basic(payload)
        answer = loop.run_until_complete(call)  # SignedCalls asserts HTTP 200
        assert answer["resultCode"] in EXPECTED, answer
        assert isinstance(answer["resultMsg"], str) and answer["resultMsg"]

    try:
        check()
    finally:
        loop.run_until_complete(client.aclose())
        loop.run_until_complete(app.state.db.dispose())
        loop.close()
