"""The V1 callbacks (`IDENTITY_MARKETPLACE_V1_KEY`): basic activities as signed GETs, kit syncs
at `/produceAPI/{name}` with an `authToken` header and V1's shapes, every answer carrying
`Body-Sign` over its exact bytes; the same directory, idempotency, replay window and audit as
V2."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2 as httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from identity import serving
from identity.app import create_app
from identity.db import Database
from identity.marketplace import v1
from identity.marketplace.client_secret import encrypt_client_secret
from identity.models import Authorisation, Department, Instance, MarketplaceCall, Tenant
from identity.settings import Settings
from identity.simulator import sender as events
from identity.simulator.v1_wire import V1KooGallery
from identity.simulator.wire import DeliveryError, Keys
from tests.helpers.auth_centres import identity_with
from tests.helpers.kit_bodies import one, rows
from tests.helpers.servers import serving_here
from tests.helpers.simulator_world import APP_ID, world

KEY = "v1-seller-key-0123456789"
TENANT, APP = "T-V1", "APP-V1"
_ticks = count()


def now_stamp() -> str:
    """UTC yyyyMMddHHmmssSSS, a millisecond later at each call (syncs keep their order)."""
    moment = datetime.now(UTC).timestamp() + next(_ticks) / 1000
    return datetime.fromtimestamp(moment, UTC).strftime("%Y%m%d%H%M%S%f")[:17]


class V1Marketplace:
    """The marketplace's side of V1: signed GETs and kit POSTs, answers checked for Body-Sign."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    def _verified(self, response: httpx.Response) -> dict[str, Any]:
        assert response.status_code == 200, response.text
        [name] = [k for k, _ in response.headers.raw if k.lower() == b"body-sign"]
        assert name == b"Body-Sign"
        assert response.headers["body-sign"].encode() == v1.body_sign(KEY, response.content)
        return dict(response.json())

    @staticmethod
    def basic_query(**params: str) -> dict[str, str]:
        fields = {**params, "timeStamp": params.get("timeStamp", now_stamp())}
        text = v1.signed_text(fields, skip_blank=False)
        return {**fields, "authToken": v1.auth_token(KEY, fields["timeStamp"], text)}

    async def basic(self, **params: str) -> dict[str, Any]:
        return self._verified(
            await self.client.get("/koogallery", params=self.basic_query(**params))
        )

    async def kit(self, name: str, body: dict[str, Any], key: str = KEY) -> dict[str, Any]:
        body = {**body, "timeStamp": body.get("timeStamp", now_stamp())}
        token = v1.auth_token(key, body["timeStamp"], v1.signed_text(body, skip_blank=True))
        raw = json.dumps(body, ensure_ascii=False).encode()
        response = await self.client.post(
            f"/koogallery/produceAPI/{name}", content=raw,
            headers={"authToken": token, "content-type": "application/json"},
        )  # fmt: skip
        return self._verified(response)


@pytest.fixture
async def marketplace(settings: Settings) -> AsyncIterator[V1Marketplace]:
    async with identity_with(settings, marketplace_v1_key=SecretStr(KEY)) as client:
        yield V1Marketplace(client)


async def test_a_v1_purchase_is_idempotent_and_answers_where_the_app_is(
    marketplace: V1Marketplace, db: Database
) -> None:
    first = await marketplace.basic(activity="newInstance", orderId="O-V1", businessId="b-1",
                                    customerId="c-1", testFlag="0")  # fmt: skip
    again = await marketplace.basic(activity="newInstance", orderId="O-V1", businessId="b-2")
    assert first["resultCode"] == "000000" and first["instanceId"] == again["instanceId"]
    assert first["appInfo"] == {"frontEndUrl": "https://identity.example.com/sso/login"}
    assert "encryptType" not in first  # no account to hand over, so nothing encrypted
    listed = await marketplace.basic(activity="queryInstance", instanceId=first["instanceId"])
    assert listed["info"][0]["instanceId"] == first["instanceId"]
    frozen = await marketplace.basic(activity="expireInstance", instanceId=first["instanceId"])
    assert frozen["resultCode"] == "000000"
    instance = await one(db, Instance, Instance.instance_id == first["instanceId"])
    assert instance.status == "frozen"
    audited = await rows(db, MarketplaceCall)
    assert {c.signature_variant for c in audited} == {"v1"}
    assert "updateInstanceStatus" in {c.interface for c in audited}


async def test_v1_syncs_fill_the_same_directory(
    marketplace: V1Marketplace, db: Database, private_key: rsa.RSAPrivateKey
) -> None:
    instance = (await marketplace.basic(activity="newInstance", orderId="O-V1K"))["instanceId"]
    common = {"instanceId": instance, "tenantId": TENANT, "testFlag": 0}  # numbers, as V1 sent
    tenant = {**common, "tenantCode": "v1co", "name": "V1 Co", "flag": 1, "orderId": "O-V1K",
              "domainName": "https://auth.v1.example.com"}  # fmt: skip
    assert (await marketplace.kit("tenantSync", tenant))["resultCode"] == "000000"
    secret = encrypt_client_secret(private_key.public_key(), "v1-client-secret")
    app = {**common, "appId": APP, "clientId": "c-v1", "clientSecret": secret, "flag": 1}
    assert (await marketplace.kit("applicationSync", app))["resultCode"] == "000000"
    orgs = json.dumps([{"orgCode": "D1", "name": "总部", "parentCode": ""}], ensure_ascii=False)
    assert (await marketplace.kit("allOrgSync", {**common, "orgInfo": orgs}))[
        "resultCode"
    ] == "000000"
    users = json.dumps([{"userName": "li", "name": "李", "orgCode": "D1", "role": "admin",
                         "enable": "true", "extension": {"entryDate": "2022-11-9"}}],
                       ensure_ascii=False)  # fmt: skip
    synced = await marketplace.kit("authSync", {**common, "appId": APP, "flag": 1,
                                                "userList": users})  # fmt: skip
    assert synced["resultCode"] == "000000", synced
    assert (await one(db, Tenant, Tenant.tenant_id == TENANT)).tenant_code == "v1co"
    assert (await one(db, Department, Department.org_code == "D1")).name == "总部"
    li = await one(db, Authorisation, Authorisation.user_name == "li")
    assert (li.role, li.enabled) == ("admin", True)


async def test_a_forged_stale_or_replayed_v1_call_is_refused_and_changes_nothing(
    marketplace: V1Marketplace, db: Database
) -> None:
    forged = await marketplace.kit("tenantSync", {"tenantId": "T-X", "flag": 1}, key="x" * 24)
    stale = await marketplace.basic(activity="newInstance", orderId="O-S",
                                    timeStamp="20170725025113409")  # fmt: skip
    signed = marketplace.basic_query(activity="newInstance", orderId="O-R")
    first = marketplace._verified(await marketplace.client.get("/koogallery", params=signed))
    replayed = marketplace._verified(await marketplace.client.get("/koogallery", params=signed))
    unknown = await marketplace.basic(activity="updateInstanceStatus", instanceId="I")
    assert forged["resultCode"] == stale["resultCode"] == replayed["resultCode"] == "000001"
    assert "window" in stale["resultMsg"] and "already been used" in replayed["resultMsg"]
    assert first["resultCode"] == "000000" and unknown["resultCode"] == "000002"
    assert [i.order_id for i in await rows(db, Instance)] == ["O-R"]
    assert await rows(db, Tenant) == []


async def test_without_the_v1_key_there_is_no_v1(settings: Settings) -> None:
    async with identity_with(settings) as client:
        basic = await client.get("/koogallery", params={"activity": "newInstance"})
        kit = await client.post("/koogallery/produceAPI/tenantSync", content=b"{}")
    assert basic.status_code == 405 and kit.status_code == 404


async def test_body_sign_is_written_with_its_case_on_the_wire(settings: Settings) -> None:
    """Through a real server: the header's name as the contract spells it, case-sensitive."""
    app = create_app(settings.model_copy(update={"marketplace_v1_key": SecretStr(KEY)}))
    protocol = serving.protocol_with(serving.Limits.from_settings(settings))
    query = V1Marketplace.basic_query(activity="queryInstance", instanceId="none")
    try:
        async with serving_here(app, http=protocol) as url:
            port = urlsplit(url).port

            def fetch() -> tuple[list[tuple[str, str]], bytes]:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                try:
                    connection.request("GET", f"/koogallery?{httpx.QueryParams(query)}")
                    response = connection.getresponse()
                    return response.getheaders(), response.read()
                finally:
                    connection.close()

            headers, body = await asyncio.to_thread(fetch)
    finally:
        await app.state.sso.auth_centre.close()
        await app.state.db.dispose()
    signs = [value for name, value in headers if name == "Body-Sign"]
    assert signs == [v1.body_sign(KEY, body).decode()]
    assert json.loads(body)["resultCode"] == "000003"


async def test_the_simulator_provisions_and_freezes_an_enterprise_through_v1(
    marketplace: V1Marketplace, db: Database, private_key_file: Path
) -> None:
    """The simulator's V1 sender (`identity simulate … --v1`): the scenario's purchase, bind and
    authorisations in V1's shapes, then a freeze as `expireInstance`, each answer's Body-Sign
    checked by the sender; an unfreeze, which V1 never had, is refused before it is sent."""
    keys = Keys.from_private_key_pem(None, None, private_key_file.read_bytes())
    sender = V1KooGallery(marketplace.client, keys, key=KEY, app_id=APP_ID,
                          auth_centre="http://127.0.0.1:9")  # fmt: skip
    acme = world().tenant("acme")
    await events.provision(sender, acme)
    await events.freeze(sender, acme)
    with pytest.raises(DeliveryError, match="no unfreeze"):
        await events.unfreeze(sender, acme)
    authorised = await rows(db, Authorisation, Authorisation.tenant_id == acme.tenant_id)
    assert {a.user_name for a in authorised} == {m.user_name for m in acme.authorised_members}
    assert (await one(db, Instance, Instance.order_id == acme.order.order_id)).status == "frozen"
    assert {c.signature_variant for c in await rows(db, MarketplaceCall)} == {"v1"}
