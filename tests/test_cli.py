"""`identity tenants list|show --json`: the operator format the design fixes, run as a process."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from identity.db import Database
from identity.marketplace.client_secret import encrypt_client_secret
from identity.models import AppCredential
from tests.helpers.cli import run_cli
from tests.helpers.kit_bodies import (
    APP,
    SUCCESS,
    TENANT,
    all_org_body,
    app_body,
    auth_body,
    kit_ok,
    new_instance,
    one,
    org,
    org_body,
    stamp,
    tenant_body,
    user,
)
from tests.helpers.marketplace_client import SignedCalls

PLAIN_SECRET = "cli-plain-secret-5f1d2c"
ACME = {
    "tenantId": TENANT,
    "tenantCode": "acme",
    "name": "Acme",
    "domainName": "https://acme.example.com",
    "state": "active",
}


async def populate(marketplace: SignedCalls, private_key: rsa.RSAPrivateKey) -> tuple[str, str]:
    """A tenant with everything `show` reports; returns (instanceId, clientSecret ciphertext)."""
    instance = await new_instance(marketplace, "O-1")
    renewal = {
        "activity": "refreshInstance",
        "scene": "RENEWAL",
        "instanceId": instance,
        "orderId": "O-R",
        "orderLineId": "O-R-1",
        "expireTime": "20300101000000",
    }
    assert (await marketplace.basic(renewal))["resultCode"] == SUCCESS
    await kit_ok(marketplace, "tenantSync", tenant_body(instanceId=instance))
    ciphertext = encrypt_client_secret(private_key.public_key(), PLAIN_SECRET)
    await kit_ok(marketplace, "applicationSync", app_body(ciphertext, instanceId=instance))
    await kit_ok(marketplace, "allOrgSync", all_org_body([org("D11", "D1"), org("D1"), org("D2")]))
    await kit_ok(marketplace, "singleOrgSync", org_body("D2", flag=0, timeStamp=stamp(2)))
    alice = user("alice", role="admin", email="alice@acme.example.com", mobile="+8613800000000")
    people = [alice, user("bob", enable="false"), user("carol"), user("dave")]
    await kit_ok(marketplace, "authSync", auth_body(people))
    await kit_ok(
        marketplace, "authSync", auth_body([user("carol")], flag=0, currentSyncTime=stamp(2))
    )
    await kit_ok(
        marketplace, "authSync", auth_body([user("dave")], flag=3, currentSyncTime=stamp(2))
    )
    return instance, ciphertext


def member(name: str, **fields: object) -> dict[str, object]:
    return {
        "userName": name,
        "name": f"Name of {name}",
        "orgCode": "D1",
        "role": "user",
        "enabled": True,
        "state": "active",
        "email": None,
        "mobile": None,
        **fields,
    }


def expected_show(instance: str) -> dict[str, object]:
    return {
        "tenant": ACME,
        "instances": [
            {
                "instanceId": instance,
                "orderId": "O-1",
                "orderLineId": "O-1-1",
                "status": "active",
                "productId": None,
                "expireTime": "2030-01-01T00:00:00",
                "orderState": None,  # no order API configured: never asked
            }
        ],
        "apps": [{"appId": APP, "clientId": "client-1", "state": "active"}],
        "departments": [
            {"orgCode": "D1", "name": "Dept D1", "parentCode": ""},
            {"orgCode": "D11", "name": "Dept D11", "parentCode": "D1"},
        ],
        "members": [
            member("alice", role="admin", email="alice@acme.example.com", mobile="+8613800000000"),
            member("bob", enabled=False),
            member("carol", state="deleted"),
            member("dave", state="cancelled"),
        ],
    }


async def test_show_prints_the_whole_tenant_and_no_secret(
    marketplace: SignedCalls,
    db: Database,
    private_key: rsa.RSAPrivateKey,
    database_url: str,
    tmp_path: Path,
) -> None:
    instance, ciphertext = await populate(marketplace, private_key)
    done = run_cli(database_url, tmp_path, "tenants", "show", TENANT, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected_show(instance)
    blob = (await one(db, AppCredential)).client_secret_enc
    output = done.stdout + done.stderr
    for secret in (PLAIN_SECRET, ciphertext, blob.hex(), base64.b64encode(blob).decode()):
        assert secret not in output


async def test_list_prints_every_tenant(
    marketplace: SignedCalls, db: Database, database_url: str, tmp_path: Path
) -> None:
    await kit_ok(marketplace, "tenantSync", tenant_body())
    gone = tenant_body(tenantId="T-OTHER", tenantCode="other", name="Other", flag=0)
    await kit_ok(marketplace, "tenantSync", gone)
    done = run_cli(database_url, tmp_path, "tenants", "list", "--json")
    assert done.returncode == 0, done.stderr
    other = {"tenantId": "T-OTHER", "tenantCode": "other", "name": "Other", "state": "deleted"}
    assert json.loads(done.stdout) == [ACME, {**ACME, **other}]


async def test_show_of_an_unknown_tenant_exits_1(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    done = run_cli(database_url, tmp_path, "tenants", "show", "NOPE", "--json")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "NOPE" in done.stderr


async def test_show_finds_a_tenant_by_its_code_in_any_case(
    marketplace: SignedCalls, db: Database, private_key: rsa.RSAPrivateKey, database_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    instance, _ = await populate(marketplace, private_key)
    done = run_cli(database_url, tmp_path, "tenants", "show", "ACME", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected_show(instance)


async def test_an_empty_list_says_so(db: Database, database_url: str, tmp_path: Path) -> None:
    done = run_cli(database_url, tmp_path, "tenants", "list")
    assert done.returncode == 0 and "no tenants yet" in done.stdout
