"""Whatever ends a member's right to use the app ends their sessions at once (design: "one rule
ties it together"), through identity.access.end_access, which also writes the outbox row."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from identity.db import Database, utcnow
from identity.marketplace.client_secret import encrypt_client_secret
from identity.models import AccessRevocation, MemberSession, SessionApp, Tenant, TenantInstance
from tests.helpers.kit_bodies import (
    APP,
    SUCCESS,
    TENANT,
    app_body,
    auth_body,
    count,
    kit_ok,
    new_instance,
    one,
    rows,
    stamp,
    tenant_body,
    user,
)
from tests.helpers.marketplace_client import SignedCalls

APP2 = "APP-2"
OTHER = "T-OTHER"
Owner = tuple[str, str, str]  # (tenant, app, user)
Revocation = tuple[str, str | None, str | None, str]  # (tenant, app, user, reason)
EVERYONE: set[Owner] = {
    (TENANT, APP, "alice"),
    (TENANT, APP2, "alice"),
    (TENANT, APP, "bob"),
    (OTHER, APP, "carol"),
}


async def add_sessions(db: Database, owners: set[Owner]) -> None:
    """One session per member, holding each of the member's apps in `owners`."""
    members = sorted({(tenant, name) for tenant, _, name in owners})
    async with db.transaction() as s:
        for n, (tenant, name) in enumerate(members):
            id_hash = f"{n:064d}"
            s.add(
                MemberSession(
                    id_hash=id_hash,
                    sid=f"sid-{n}",
                    tenant_id=tenant,
                    user_name=name,
                    expires_at=utcnow() + timedelta(hours=1),
                )
            )
            await s.flush()
            for owner_tenant, app, owner in sorted(owners):
                if (owner_tenant, owner) == (tenant, name):
                    s.add(SessionApp(sid=f"sid-{n}", app_id=app))


async def live_sessions(db: Database) -> set[Owner]:
    """(tenant, app, member) of every app part of every session."""
    async with db.read() as s:
        rows = await s.execute(
            select(MemberSession.tenant_id, SessionApp.app_id, MemberSession.user_name).join(
                SessionApp, SessionApp.sid == MemberSession.sid
            )
        )
        return {(t, a, u) for t, a, u in rows}


async def revocations(db: Database) -> set[Revocation]:
    return {
        (r.tenant_id, r.app_id, r.user_name, r.reason) for r in await rows(db, AccessRevocation)
    }


async def bind_tenant(
    marketplace: SignedCalls, tenant_id: str, order_id: str, **overrides: Any
) -> str:
    instance = await new_instance(marketplace, order_id)
    body = tenant_body(
        tenantId=tenant_id, tenantCode=tenant_id.lower(), instanceId=instance, **overrides
    )
    await kit_ok(marketplace, "tenantSync", body)
    return instance


async def build_world(
    marketplace: SignedCalls, db: Database, private_key: rsa.RSAPrivateKey
) -> dict[str, str]:
    """Two bound tenants, members in two apps, and one live session per (member, app)."""
    instances = {
        TENANT: await bind_tenant(marketplace, TENANT, "O-1"),
        OTHER: await bind_tenant(marketplace, OTHER, "O-2"),
    }
    secret = encrypt_client_secret(private_key.public_key(), "s3cret")
    await kit_ok(marketplace, "applicationSync", app_body(secret, instanceId=instances[TENANT]))
    for tenant, app, name in sorted(EVERYONE):
        body = auth_body([user(name)], tenantId=tenant, appId=app, instanceId=instances[tenant])
        await kit_ok(marketplace, "authSync", body)
    await add_sessions(db, EVERYONE)
    assert await revocations(db) == set()
    return instances


async def basic_ok(marketplace: SignedCalls, body: dict[str, str]) -> None:
    answer = await marketplace.basic(body)
    assert answer["resultCode"] == SUCCESS, answer


def freeze(instance_id: str) -> dict[str, str]:
    return {"activity": "updateInstanceStatus", "instanceId": instance_id, "status": "FREEZE"}


def release(instance_id: str) -> dict[str, str]:
    return {"activity": "releaseInstance", "instanceId": instance_id}


Action = Callable[[SignedCalls, dict[str, str]], Awaitable[None]]


def kit_action(name: str, build: Callable[[], dict[str, object]]) -> Action:
    async def act(marketplace: SignedCalls, instances: dict[str, str]) -> None:
        await kit_ok(marketplace, name, {**build(), "instanceId": instances[TENANT]})

    return act


def basic_action(build: Callable[[str], dict[str, str]]) -> Action:
    async def act(marketplace: SignedCalls, instances: dict[str, str]) -> None:
        await basic_ok(marketplace, build(instances[TENANT]))

    return act


def alice(flag: int, **fields: str) -> Action:
    return kit_action(
        "authSync",
        lambda: auth_body([user("alice", **fields)], flag=flag, currentSyncTime=stamp(2)),
    )


CASES = [
    pytest.param(
        alice(0),
        {(TENANT, APP, "alice"), (TENANT, APP2, "alice")},
        (TENANT, None, "alice", "member_deleted"),
        id="authSync-flag-0",
    ),
    pytest.param(
        alice(3),
        {(TENANT, APP, "alice")},
        (TENANT, APP, "alice", "authorisation_cancelled"),
        id="authSync-flag-3",
    ),
    pytest.param(
        alice(2, enable="false"),
        {(TENANT, APP, "alice")},
        (TENANT, APP, "alice", "member_disabled"),
        id="authSync-enable-false",
    ),
    pytest.param(
        kit_action("tenantSync", lambda: tenant_body(flag=0, timeStamp=stamp(2))),
        {(TENANT, APP, "alice"), (TENANT, APP2, "alice"), (TENANT, APP, "bob")},
        (TENANT, None, None, "tenant_deleted"),
        id="tenantSync-flag-0",
    ),
    pytest.param(
        kit_action("applicationSync", lambda: app_body("", flag=0, timeStamp=stamp(2))),
        {(TENANT, APP, "alice"), (TENANT, APP, "bob")},
        (TENANT, APP, None, "app_credential_deleted"),
        id="applicationSync-flag-0",
    ),
    pytest.param(
        basic_action(freeze),
        {(TENANT, APP, "alice"), (TENANT, APP2, "alice"), (TENANT, APP, "bob")},
        (TENANT, None, None, "instance_frozen"),
        id="updateInstanceStatus-FREEZE",
    ),
    pytest.param(
        basic_action(release),
        {(TENANT, APP, "alice"), (TENANT, APP2, "alice"), (TENANT, APP, "bob")},
        (TENANT, None, None, "instance_released"),
        id="releaseInstance",
    ),
]


@pytest.mark.parametrize(("action", "ended", "revocation"), CASES)
async def test_every_deprovisioning_path_ends_sessions(
    marketplace: SignedCalls,
    db: Database,
    private_key: rsa.RSAPrivateKey,
    action: Action,
    ended: set[Owner],
    revocation: Revocation,
) -> None:
    instances = await build_world(marketplace, db, private_key)
    await action(marketplace, instances)
    assert await live_sessions(db) == EVERYONE - ended
    assert await revocations(db) == {revocation}


async def test_a_stale_delete_ends_nothing(
    marketplace: SignedCalls, db: Database, private_key: rsa.RSAPrivateKey
) -> None:
    await build_world(marketplace, db, private_key)
    stale = auth_body([user("alice")], flag=0, currentSyncTime="20000101000000000")
    await kit_ok(marketplace, "authSync", stale)
    assert await live_sessions(db) == EVERYONE
    assert await revocations(db) == set()


async def test_enabling_or_unfreezing_ends_nothing(
    marketplace: SignedCalls, db: Database, private_key: rsa.RSAPrivateKey
) -> None:
    instances = await build_world(marketplace, db, private_key)
    await alice(2, enable="true")(marketplace, instances)
    unfreeze = {**freeze(instances[TENANT]), "status": "UNFREEZE"}
    await basic_ok(marketplace, unfreeze)
    assert await live_sessions(db) == EVERYONE
    assert await revocations(db) == set()


async def move_app2_to(marketplace: SignedCalls, instance_id: str) -> None:
    """A second product: APP2's authorisation now comes with another instance (§0.4)."""
    body = auth_body([user("alice")], appId=APP2, instanceId=instance_id, currentSyncTime=stamp(9))
    await kit_ok(marketplace, "authSync", body)


@pytest.mark.parametrize(
    ("build", "reason"), [(freeze, "instance_frozen"), (release, "instance_released")]
)
async def test_ending_one_of_two_instances_ends_only_its_apps(
    marketplace: SignedCalls,
    db: Database,
    private_key: rsa.RSAPrivateKey,
    build: Callable[[str], dict[str, str]],
    reason: str,
) -> None:
    instances = await build_world(marketplace, db, private_key)
    second = await bind_tenant(marketplace, TENANT, "O-3")
    await move_app2_to(marketplace, second)
    await basic_ok(marketplace, build(instances[TENANT]))
    assert await live_sessions(db) == {(TENANT, APP2, "alice"), (OTHER, APP, "carol")}
    assert await revocations(db) == {(TENANT, APP, None, reason)}
    await basic_ok(marketplace, build(second))  # now no active instance holds the tenant
    assert await live_sessions(db) == {(OTHER, APP, "carol")}
    assert (TENANT, None, None, reason) in await revocations(db)


async def test_repeated_freezes_write_one_revocation(
    marketplace: SignedCalls, db: Database, private_key: rsa.RSAPrivateKey
) -> None:
    instances = await build_world(marketplace, db, private_key)
    for _ in range(3):
        await basic_ok(marketplace, freeze(instances[TENANT]))
    assert await count(db, AccessRevocation) == 1
    assert await revocations(db) == {(TENANT, None, None, "instance_frozen")}


# --- tenant bindings: one per (tenantId, instanceId), with its own state and sync time --------

TENANT_ENDED = {(OTHER, APP, "carol")}
"""The live sessions once TENANT's access has ended."""


async def tenant_state(db: Database) -> str:
    return str((await one(db, Tenant, Tenant.tenant_id == TENANT)).state)


async def bindings(db: Database) -> dict[str, str]:
    """instanceId -> binding state, for TENANT."""
    found = await rows(db, TenantInstance, TenantInstance.tenant_id == TENANT)
    return {b.instance_id: b.state for b in found}


async def unbind(marketplace: SignedCalls, instance_id: str, n: int) -> None:
    await kit_ok(
        marketplace, "tenantSync", tenant_body(instanceId=instance_id, flag=0, timeStamp=stamp(n))
    )


async def test_a_stale_add_revives_neither_the_tenant_nor_its_binding(
    marketplace: SignedCalls, db: Database, private_key: rsa.RSAPrivateKey
) -> None:
    first = (await build_world(marketplace, db, private_key))[TENANT]
    await unbind(marketplace, first, 5)
    stale = tenant_body(instanceId=first, flag=1, timeStamp=stamp(3))
    await kit_ok(marketplace, "tenantSync", stale)
    assert await tenant_state(db) == "deleted"
    assert await bindings(db) == {first: "deleted"}
    # Re-added through another instance; releasing that one must end access, because the
    # deleted binding of the first (still active) instance no longer holds the tenant.
    second = await bind_tenant(marketplace, TENANT, "O-3", timeStamp=stamp(6))
    assert await tenant_state(db) == "active"
    assert await bindings(db) == {first: "deleted", second: "active"}
    await add_sessions(db, {owner for owner in EVERYONE if owner[0] == TENANT})
    await basic_ok(marketplace, release(second))
    assert await live_sessions(db) == TENANT_ENDED
    assert await revocations(db) == {
        (TENANT, None, None, "tenant_deleted"),
        (TENANT, None, None, "instance_released"),
    }


async def test_unbinding_one_of_two_instances_keeps_the_tenant(
    marketplace: SignedCalls, db: Database, private_key: rsa.RSAPrivateKey
) -> None:
    first = (await build_world(marketplace, db, private_key))[TENANT]
    second = await bind_tenant(marketplace, TENANT, "O-3", timeStamp=stamp(2))
    await move_app2_to(marketplace, second)
    await unbind(marketplace, first, 3)
    assert await tenant_state(db) == "active"
    assert (await bindings(db))[second] == "active"
    assert await live_sessions(db) == {(TENANT, APP2, "alice"), (OTHER, APP, "carol")}
    assert await revocations(db) == {(TENANT, APP, None, "instance_unbound")}
    await unbind(marketplace, second, 4)  # the last binding goes: so does the tenant
    assert await tenant_state(db) == "deleted"
    assert await bindings(db) == {first: "deleted", second: "deleted"}
    assert await live_sessions(db) == TENANT_ENDED
    assert (TENANT, None, None, "tenant_deleted") in await revocations(db)


async def test_a_delete_without_an_instance_drops_every_binding(
    marketplace: SignedCalls, db: Database, private_key: rsa.RSAPrivateKey
) -> None:
    first = (await build_world(marketplace, db, private_key))[TENANT]
    second = await bind_tenant(marketplace, TENANT, "O-3", timeStamp=stamp(2))
    await unbind(marketplace, "", 3)
    assert await tenant_state(db) == "deleted"
    assert await bindings(db) == {first: "deleted", second: "deleted"}
    assert await live_sessions(db) == TENANT_ENDED
    assert await revocations(db) == {(TENANT, None, None, "tenant_deleted")}


async def test_unbinding_the_live_instance_ends_access_when_the_other_is_released(
    marketplace: SignedCalls, db: Database, private_key: rsa.RSAPrivateKey
) -> None:
    """Still bound, but only to a released instance: nothing holds the tenant any more."""
    first = (await build_world(marketplace, db, private_key))[TENANT]
    second = await bind_tenant(marketplace, TENANT, "O-3", timeStamp=stamp(2))
    await basic_ok(marketplace, release(second))
    assert await live_sessions(db) == EVERYONE  # the first instance still holds it
    await unbind(marketplace, first, 3)
    assert await live_sessions(db) == TENANT_ENDED
    assert await revocations(db) == {(TENANT, None, None, "tenant_deleted")}


@pytest.mark.parametrize("late_bind_first", [True, False])
async def test_the_tenant_state_does_not_depend_on_arrival_order(
    marketplace: SignedCalls, db: Database, private_key: rsa.RSAPrivateKey, late_bind_first: bool
) -> None:
    """Unbind I1 at t10 and bind I2 at t8, in either order: the tenant is held by I2."""
    first = (await build_world(marketplace, db, private_key))[TENANT]
    second = await new_instance(marketplace, "O-3")
    late_bind = tenant_body(instanceId=second, timeStamp=stamp(8))
    if late_bind_first:
        await kit_ok(marketplace, "tenantSync", late_bind)
    await unbind(marketplace, first, 10)
    if not late_bind_first:
        await kit_ok(marketplace, "tenantSync", late_bind)
    assert await tenant_state(db) == "active"
    assert await bindings(db) == {first: "deleted", second: "active"}


async def test_a_modify_renames_without_binding(
    marketplace: SignedCalls, db: Database, private_key: rsa.RSAPrivateKey
) -> None:
    """Flag 2 changes only the name and domain (§3.1): it neither binds nor revives."""
    first = (await build_world(marketplace, db, private_key))[TENANT]
    await unbind(marketplace, first, 3)
    other = await new_instance(marketplace, "O-3")
    await kit_ok(
        marketplace,
        "tenantSync",
        tenant_body(instanceId=other, flag=2, name="New", timeStamp=stamp(4)),
    )
    assert await bindings(db) == {first: "deleted"}
    assert await tenant_state(db) == "deleted"
    assert (await one(db, Tenant, Tenant.tenant_id == TENANT)).name == "New"
