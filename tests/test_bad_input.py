"""What the kit endpoints do with bad input, debug data and a failing database.

Always HTTP 200 + JSON: a bad request is 000002 naming the field, a database failure is 000005,
and neither leaves anything written (design: "Always answer HTTP 200 ...").
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from identity.db import Database
from identity.marketplace.client_secret import encrypt_client_secret
from identity.models import AppCredential, Base, Department, Member, Tenant
from identity.settings import Settings
from tests.helpers.kit_bodies import (
    INVALID,
    SUCCESS,
    Body,
    all_org_body,
    app_body,
    assert_nothing_written,
    auth_body,
    count,
    directory_counts,
    kit_raw,
    org,
    org_body,
    sender_for,
    tenant_body,
    user,
)
from tests.helpers.marketplace_client import SignedCalls

INTERNAL = {"resultCode": "000005", "resultMsg": "other inner error"}
INTERFACES = ["tenantSync", "applicationSync", "authSync", "singleOrgSync", "allOrgSync"]
WRITES: dict[str, type[Base]] = {
    "tenantSync": Tenant,
    "applicationSync": AppCredential,
    "authSync": Member,
    "singleOrgSync": Department,
    "allOrgSync": Department,
}


def without(body: Body, key: str) -> Body:
    return {k: v for k, v in body.items() if k != key}


BAD = [
    pytest.param("authSync", b'{"tenantId": "T", "flag": ', "JSON", id="malformed-json"),
    pytest.param("authSync", b'[{"tenantId": "T"}]', "object", id="json-array"),
    pytest.param("tenantSync", tenant_body(flag="1"), "flag", id="flag-as-string"),
    pytest.param("tenantSync", tenant_body(testFlag=True), "testFlag", id="testFlag-true"),
    pytest.param("tenantSync", tenant_body(flag=4), "flag", id="tenant-flag-4"),
    pytest.param("authSync", auth_body([user("a")], flag=4), "flag", id="auth-flag-4"),
    pytest.param("tenantSync", without(tenant_body(), "tenantId"), "tenantId", id="no-tenantId"),
    pytest.param("authSync", without(auth_body([user("a")]), "appId"), "appId", id="no-appId"),
    pytest.param("authSync", auth_body([user("u" * 65, name="A")]), "userName", id="userName-65"),
    pytest.param("authSync", auth_body([user("a", enable="yes")]), "enable", id="enable-yes"),
    pytest.param("authSync", auth_body([without(user("a"), "role")]), "role", id="no-role"),
    pytest.param("authSync", auth_body("[{not json"), "userList", id="userList-garbage"),
    pytest.param("tenantSync", tenant_body(instanceId="i" * 65), "instanceId", id="instance-65"),
    pytest.param("tenantSync", tenant_body(timeStamp="2024"), "timeStamp", id="short-timeStamp"),
    pytest.param("singleOrgSync", without(org_body("D1"), "orgName"), "orgName", id="no-orgName"),
    pytest.param("allOrgSync", all_org_body("{{{"), "orgInfoList", id="orgInfoList-garbage"),
    pytest.param("allOrgSync", all_org_body([{"orgName": "x"}]), "orgCode", id="no-orgCode"),
    pytest.param("fooSync", tenant_body(), "interface", id="unknown-interface"),
    pytest.param(
        "tenantSync", tenant_body(name="x" * (2 * 1024 * 1024)), "body", id="body-over-2MiB"
    ),
]


async def send_invalid(
    marketplace: SignedCalls, db: Database, name: str, body: Body | bytes
) -> str:
    """Send `body` (bytes signed as they are); assert 000002 and nothing written; the message."""
    if isinstance(body, bytes):
        answer = await kit_raw(marketplace, name, body)
    else:
        answer = await marketplace.kit(name, body)
    assert answer["resultCode"] == INVALID, answer
    await assert_nothing_written(db)
    return str(answer["resultMsg"])


@pytest.mark.parametrize(("name", "body", "names"), BAD)
async def test_bad_input_is_000002_naming_the_field(
    marketplace: SignedCalls, db: Database, name: str, body: Body | bytes, names: str
) -> None:
    assert names in await send_invalid(marketplace, db, name, body)


def snake_case(body: Body) -> Body:
    return {re.sub("([A-Z])", lambda m: "_" + m[1].lower(), k): v for k, v in body.items()}


DEEP = 100_000
HOSTILE = [
    pytest.param("authSync", auth_body([user("a", employeeType=2**70)]), id="employeeType-2**70"),
    pytest.param("authSync", auth_body("[" * DEEP + "]" * DEEP), id="userList-deeply-nested"),
    pytest.param("allOrgSync", all_org_body("[" * DEEP), id="orgInfoList-relaxed-deep"),
    pytest.param(
        "allOrgSync", all_org_body("[{a:" * DEEP + "1" + "}]" * DEEP), id="orgInfoList-deep-keys"
    ),
    pytest.param(
        "tenantSync", json.dumps(tenant_body(instanceId="\ud800")).encode(), id="lone-surrogate"
    ),
    pytest.param(
        "tenantSync", json.dumps(tenant_body(name="A\udfffB")).encode(), id="lone-low-surrogate"
    ),
    pytest.param("tenantSync", snake_case(tenant_body()), id="snake_case-fields"),
]


@pytest.mark.parametrize(("name", "body"), HOSTILE)
async def test_hostile_input_is_000002_not_an_internal_error(
    marketplace: SignedCalls, db: Database, name: str, body: Body | bytes
) -> None:
    await send_invalid(marketplace, db, name, body)


def windowed(window: int, ttl: int) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        signature_window_seconds=window,
        nonce_ttl_seconds=ttl,
    )


def test_the_nonce_ttl_must_cover_twice_the_signature_window() -> None:
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (defaults.signature_window_seconds, defaults.nonce_ttl_seconds) == (60, 120)
    windowed(300, 600)
    with pytest.raises(ValidationError, match="(?i)nonce"):
        windowed(300, 120)
    with pytest.raises(ValidationError, match="(?i)nonce"):
        windowed(61, 120)


# --- debug data (testFlag 1) ---------------------------------------------------------------


def valid_bodies(private_key: rsa.RSAPrivateKey, **overrides: Any) -> dict[str, Body]:
    secret = encrypt_client_secret(private_key.public_key(), "s3cret")
    return {
        "tenantSync": tenant_body(**overrides),
        "applicationSync": app_body(secret, **overrides),
        "authSync": auth_body([user("alice")], **overrides),
        "singleOrgSync": org_body("D1", **overrides),
        "allOrgSync": all_org_body([org("D1")], **overrides),
    }


@pytest.mark.parametrize("name", INTERFACES)
async def test_debug_data_is_answered_but_not_written(
    marketplace: SignedCalls, db: Database, private_key: rsa.RSAPrivateKey, name: str
) -> None:
    body = valid_bodies(private_key, testFlag=1)[name]
    assert await marketplace.kit(name, body) == {"resultCode": SUCCESS, "resultMsg": "success."}
    await assert_nothing_written(db)
    real = {**body, "testFlag": 0}
    assert (await marketplace.kit(name, real))["resultCode"] == SUCCESS
    assert await count(db, WRITES[name]) == 1  # the same body as real data is written


@pytest.mark.parametrize("name", INTERFACES)
async def test_debug_data_is_validated_fully(
    marketplace: SignedCalls, db: Database, private_key: rsa.RSAPrivateKey, name: str
) -> None:
    body = without(valid_bodies(private_key, testFlag=1)[name], "tenantId")
    answer = await marketplace.kit(name, body)
    assert answer["resultCode"] == INVALID, answer
    assert "tenantId" in answer["resultMsg"]
    await assert_nothing_written(db)


async def test_a_debug_secret_that_does_not_decrypt_is_refused(
    marketplace: SignedCalls, db: Database
) -> None:
    answer = await marketplace.kit("applicationSync", app_body("garbage", testFlag=1))
    assert answer["resultCode"] == "000101", answer
    await assert_nothing_written(db)


@pytest.mark.parametrize("name", INTERFACES)
async def test_seller_debug_syncs_are_persisted_when_switched_on(
    settings: Settings, db: Database, private_key: rsa.RSAPrivateKey, name: str
) -> None:
    persisting = settings.model_copy(update={"persist_seller_debug_syncs": True})
    async with sender_for(persisting) as (sender, _):
        buyer = valid_bodies(private_key, testFlag=1, instanceId="INST-9")[name]
        assert (await sender.kit(name, buyer))["resultCode"] == SUCCESS
        await assert_nothing_written(db)  # only the seller's own test tenant is kept
        seller = valid_bodies(private_key, testFlag=1, instanceId="")[name]
        assert (await sender.kit(name, seller))["resultCode"] == SUCCESS
    assert await count(db, WRITES[name]) == 1


# --- database failures ---------------------------------------------------------------------

TRIGGER = {
    "sqlite": (
        [
            "CREATE TRIGGER boom BEFORE INSERT ON authorisations "
            "BEGIN SELECT RAISE(ABORT, 'boom'); END"
        ],
        ["DROP TRIGGER IF EXISTS boom"],
    ),
    "postgresql": (
        [
            "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'boom'; END $$",
            "CREATE TRIGGER boom BEFORE INSERT ON authorisations "
            "FOR EACH ROW EXECUTE FUNCTION boom()",
        ],
        ["DROP TRIGGER IF EXISTS boom ON authorisations", "DROP FUNCTION IF EXISTS boom()"],
    ),
}


async def _run_sql(db: Database, statements: list[str]) -> None:
    async with db.engine.begin() as conn:
        for sql in statements:
            await conn.exec_driver_sql(sql)


@asynccontextmanager
async def failing_authorisation_inserts(db: Database) -> AsyncIterator[None]:
    create, drop = TRIGGER[db.engine.dialect.name]
    await _run_sql(db, create)
    try:
        yield
    finally:
        await _run_sql(db, drop)


async def test_a_database_error_is_000005_and_rolls_everything_back(
    marketplace: SignedCalls, db: Database
) -> None:
    async with failing_authorisation_inserts(db):
        answer = await marketplace.kit("authSync", auth_body([user("alice"), user("bob")]))
    assert answer == INTERNAL
    assert await count(db, Member) == 0  # members are written before authorisations
    await assert_nothing_written(db)
    await marketplace.kit("authSync", auth_body([user("alice"), user("bob")]))
    assert (await directory_counts(db))["authorisations"] == 2  # the trigger is gone again


async def test_a_database_that_is_down_is_000005_and_not_ready(settings: Settings) -> None:
    down = settings.model_copy(
        update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/x"}
    )
    async with sender_for(down) as (sender, client):
        assert await sender.kit("tenantSync", tenant_body()) == INTERNAL
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/healthz")).status_code == 200
