"""The simulator's sender against the real identity app (ASGI): provisioning and every event
arrive as identity's state (contract §0.4, §3, §4)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx2 as httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from identity.crypto import Cipher
from identity.db import Database
from identity.directory.tenants import secret_context
from identity.models import (
    ACTIVE,
    CANCELLED,
    DELETED,
    FROZEN,
    RELEASED,
    AppCredential,
    Authorisation,
    Department,
    Instance,
    Member,
    Tenant,
    TenantInstance,
)
from identity.simulator import sender as events
from identity.simulator.scenario import Scenario, ScenarioError
from identity.simulator.sender import DeliveryError, Keys, KooGallery, Refused, SyncClock
from tests.helpers.kit_bodies import count, one, rows
from tests.helpers.marketplace_client import BASIC_KEY, KIT_KEY, SECRET_KEY
from tests.helpers.simulator_world import ACME, BETA, SIM, world, world_data


@pytest.fixture
def keys(private_key: rsa.RSAPrivateKey) -> Keys:
    return Keys(BASIC_KEY, KIT_KEY, private_key.public_key())


@pytest.fixture
def lines() -> list[str]:
    return []


@pytest.fixture
def make_sender(
    client: httpx.AsyncClient, keys: Keys, lines: list[str]
) -> Callable[[Scenario], KooGallery]:
    def make(scenario: Scenario) -> KooGallery:
        return KooGallery(
            client, keys, app_id=scenario.app_id, auth_centre=SIM, report=lines.append
        )

    return make


async def _state(db: Database, model: Any, *where: Any) -> str:
    return str((await one(db, model, *where)).state)


async def test_provision_two_tenants(
    make_sender: Callable[[Scenario], KooGallery], db: Database, lines: list[str]
) -> None:
    scenario = world()
    sender = make_sender(scenario)
    for tenant in scenario.tenants:
        answers = await events.provision(sender, tenant)
        assert [a["resultCode"] for a in answers] == ["000000"] * 4
    assert [line.split()[0] for line in lines[:5]] == [
        "newInstance",
        "tenantSync",
        "applicationSync",
        "allOrgSync",
        "authSync",
    ]
    assert len(lines) == 10
    acme = await one(db, Tenant, Tenant.tenant_id == ACME["tenantId"])
    assert (acme.tenant_code, acme.name, acme.domain_name, acme.state) == (
        "acme",
        ACME["name"],
        SIM,
        ACTIVE,
    )
    instance = await one(db, Instance, Instance.order_id == ACME["order"]["orderId"])
    assert (instance.instance_id, instance.status) == ("acme-0001", ACTIVE)  # the businessId
    binding = await one(db, TenantInstance, TenantInstance.tenant_id == ACME["tenantId"])
    assert (binding.instance_id, binding.order_id) == ("acme-0001", ACME["order"]["orderId"])
    assert await count(db, Tenant, Tenant.state == ACTIVE) == 2
    await _assert_credentials(db)
    await _assert_directory(db)


async def _assert_credentials(db: Database) -> None:
    cipher = Cipher(SECRET_KEY)
    for spec in (ACME, BETA):
        credential = await one(db, AppCredential, AppCredential.tenant_id == spec["tenantId"])
        assert (credential.app_id, credential.client_id) == ("demo-app", spec["clientId"])
        assert credential.client_secret_enc is not None
        context = secret_context(spec["tenantId"], "demo-app")
        assert cipher.decrypt(credential.client_secret_enc, context) == spec["clientSecret"]


async def _assert_directory(db: Database) -> None:
    departments = await rows(db, Department, Department.tenant_id == ACME["tenantId"])
    assert {(d.org_code, d.name, d.parent_code) for d in departments} == {
        (d["orgCode"], d["orgName"], d["parentCode"]) for d in ACME["departments"]
    }
    members = await rows(db, Member, Member.tenant_id == ACME["tenantId"])
    assert {m.user_name for m in members} == {"alice", "bob", "carol"}  # dave: not authorised
    alice = next(m for m in members if m.user_name == "alice")
    assert (alice.name, alice.org_code, alice.mobile, alice.email) == (
        "Alice 爱丽丝",
        "acme",
        "+8613800000001",
        "alice@acme.example.com",
    )
    grants = await rows(db, Authorisation, Authorisation.tenant_id == ACME["tenantId"])
    assert {(a.user_name, a.app_id, a.role, a.enabled, a.state) for a in grants} == {
        ("alice", "demo-app", "admin", True, ACTIVE),
        ("bob", "demo-app", "user", True, ACTIVE),
        ("carol", "demo-app", "user", False, ACTIVE),
    }
    beta = await rows(db, Authorisation, Authorisation.tenant_id == BETA["tenantId"])
    assert [(a.user_name, a.enabled) for a in beta] == [("alice", True)]


async def _provisioned(
    make_sender: Callable[[Scenario], KooGallery],
) -> tuple[KooGallery, Scenario]:
    scenario = world()
    sender = make_sender(scenario)
    await events.provision(sender, scenario.tenant("acme"))
    return sender, scenario


def _grant(user: str) -> Any:
    return (Authorisation.tenant_id == ACME["tenantId"], Authorisation.user_name == user)


async def test_member_events(make_sender: Callable[[Scenario], KooGallery], db: Database) -> None:
    sender, scenario = await _provisioned(make_sender)
    acme = scenario.tenant("t-acme-0001")
    await events.disable_member(sender, acme, "bob")
    assert (await one(db, Authorisation, *_grant("bob"))).enabled is False
    await events.enable_member(sender, acme, "bob")
    assert (await one(db, Authorisation, *_grant("bob"))).enabled is True
    await events.add_member(sender, acme, "dave")
    assert await _state(db, Authorisation, *_grant("dave")) == ACTIVE
    await events.cancel_authorisation(sender, acme, "dave")
    assert await _state(db, Authorisation, *_grant("dave")) == CANCELLED
    assert await _state(db, Member, Member.user_name == "dave") == ACTIVE
    await events.delete_member(sender, acme, "carol")
    assert await _state(db, Member, Member.user_name == "carol") == DELETED
    assert await _state(db, Authorisation, *_grant("carol")) == DELETED


async def test_move_department(make_sender: Callable[[Scenario], KooGallery], db: Database) -> None:
    sender, scenario = await _provisioned(make_sender)
    acme = scenario.tenant("acme")
    await events.move_department(sender, acme, "acme-web", "acme-sales")
    web = Department.org_code == "acme-web"
    assert (await one(db, Department, web)).parent_code == "acme-sales"
    await events.move_department(sender, acme, "acme-web", "")
    assert (await one(db, Department, web)).parent_code == ""
    with pytest.raises(ScenarioError, match="subtree"):
        await events.move_department(sender, acme, "acme-rd", "acme-web")
    with pytest.raises(ScenarioError, match="no department"):
        await events.move_department(sender, acme, "acme-rd", "nowhere")


async def test_instance_events(make_sender: Callable[[Scenario], KooGallery], db: Database) -> None:
    sender, scenario = await _provisioned(make_sender)
    acme = scenario.tenant("acme")
    instance = Instance.instance_id == "acme-0001"
    await events.freeze(sender, acme)
    assert (await one(db, Instance, instance)).status == FROZEN
    await events.unfreeze(sender, acme)
    assert (await one(db, Instance, instance)).status == ACTIVE
    await events.release(sender, acme)
    assert (await one(db, Instance, instance)).status == RELEASED
    await events.unbind(sender, acme)
    assert await _state(db, Tenant, Tenant.tenant_id == ACME["tenantId"]) == DELETED


async def test_a_new_sender_learns_the_instance_id_by_replaying_new_instance(
    make_sender: Callable[[Scenario], KooGallery], db: Database, lines: list[str]
) -> None:
    """A fresh process (a CLI command) knows no instanceId: newInstance answers the same one.
    That look-up is not what the operator asked for, so only the event is reported."""
    _, scenario = await _provisioned(make_sender)
    lines.clear()
    await events.freeze(make_sender(scenario), scenario.tenant("acme"))
    assert [line.split()[:2] for line in lines] == [["updateInstanceStatus", "acme-0001"]]
    assert await count(db, Instance) == 1
    assert (await one(db, Instance)).status == FROZEN


async def test_rebinding_is_idempotent(
    make_sender: Callable[[Scenario], KooGallery], db: Database
) -> None:
    sender, scenario = await _provisioned(make_sender)
    await events.bind(sender, scenario.tenant("acme"))
    await events.provision(sender, scenario.tenant("acme"))
    assert await count(db, Tenant) == 1 and await count(db, Instance) == 1
    assert await count(db, Department) == len(ACME["departments"])


async def test_auth_sync_sends_at_most_500_users_per_call(
    make_sender: Callable[[Scenario], KooGallery], db: Database, lines: list[str]
) -> None:
    data = world_data()
    member = {"name": "M", "orgCode": "acme", "password": "pw"}
    data["tenants"][0]["members"] = [{**member, "userName": f"m{i:04d}"} for i in range(501)]
    scenario = Scenario.model_validate(data)
    await events.provision(make_sender(scenario), scenario.tenant("acme"))
    assert [line.split()[0] for line in lines].count("authSync") == 2
    assert await count(db, Authorisation, Authorisation.tenant_id == ACME["tenantId"]) == 501


async def test_a_refusal_raises_and_names_the_call(
    client: httpx.AsyncClient, keys: Keys, db: Database
) -> None:
    scenario = world()
    wrong = Keys(BASIC_KEY, "not-the-kit-key", keys.public_key)
    sender = KooGallery(client, wrong, app_id=scenario.app_id, auth_centre=SIM)
    with pytest.raises(Refused, match="identity refused tenantSync: 000001") as refused:
        await events.provision(sender, scenario.tenant("acme"))
    assert refused.value.result_code == "000001"
    assert await count(db, Tenant) == 0


async def test_missing_keys_are_named(client: httpx.AsyncClient, db: Database) -> None:
    scenario = world()
    sender = KooGallery(client, Keys(BASIC_KEY, KIT_KEY), app_id=scenario.app_id, auth_centre=SIM)
    with pytest.raises(DeliveryError, match="IDENTITY_MARKETPLACE_PRIVATE_KEY_FILE"):
        await events.bind(sender, scenario.tenant("acme"))
    no_basic = KooGallery(client, Keys(None, KIT_KEY), app_id=scenario.app_id, auth_centre=SIM)
    with pytest.raises(DeliveryError, match="IDENTITY_MARKETPLACE_BASIC_KEY"):
        await events.freeze(no_basic, scenario.tenant("acme"))


async def test_an_unreachable_identity_is_a_delivery_error(keys: Keys) -> None:
    scenario = world()
    async with httpx.AsyncClient(base_url="http://127.0.0.1:9") as client:
        sender = KooGallery(client, keys, app_id=scenario.app_id, auth_centre=SIM)
        with pytest.raises(DeliveryError, match="unreachable at http://127.0.0.1:9/koogallery"):
            await events.freeze(sender, scenario.tenant("acme"))


def test_sync_times_are_gmt8_and_strictly_increasing() -> None:
    clock = SyncClock(lambda: 0.0)
    first, second = clock.now(), clock.now()
    assert (first, second) == ("19700101080000000", "19700101080000001")
    real = SyncClock()
    stamps = [real.now() for _ in range(50)]
    assert stamps == sorted(set(stamps)) and all(re.fullmatch(r"\d{17}", s) for s in stamps)
    assert abs(datetime.strptime(stamps[0][:14], "%Y%m%d%H%M%S").year - datetime.now().year) <= 1
