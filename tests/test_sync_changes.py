"""What each marketplace call changed, recorded by its handler with the audit row, in the call's
transaction, and said on the admin's syncs page: an authSync's members added and disabled and
the sessions it ended, a full department sync's departments added and removed, a single
department by its current name or a call older than what is stored, a freeze of the tenant's
subscription (whose body names no tenant) on that tenant's page, nothing for a debug call, and
an honest word for the calls audited before anything was recorded. Counts and ids only: no
name, no other part of the payload. And the revision that added the column, both ways."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from alembic import command
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from identity.admin import sync_log
from identity.admin.service import SyncRow
from identity.db import Database, async_url
from identity.marketplace.client_secret import encrypt_client_secret
from identity.migrate import alembic_config, upgrade
from identity.models import MarketplaceCall
from tests.helpers.admin_rows import add_session, give_password, sessions_of
from tests.helpers.kit_bodies import (
    TENANT,
    all_org_body,
    app_body,
    auth_body,
    kit_ok,
    new_instance,
    one,
    org,
    org_body,
    rows,
    stamp,
    tenant_body,
    user,
)
from tests.helpers.marketplace_client import SECRET_KEY, SignedCalls
from tests.helpers.servers import scratch_postgres
from tests.helpers.syncs_page import said_on_syncs_page, signed_in_admin


async def bound_tenant(marketplace: SignedCalls, private_key: rsa.RSAPrivateKey) -> str:
    """acme bound to a new subscription, with its app and alice, its admin; the instance id."""
    instance = await new_instance(marketplace)
    await kit_ok(marketplace, "tenantSync", tenant_body(instanceId=instance))
    secret = encrypt_client_secret(private_key.public_key(), "s3cret")
    await kit_ok(marketplace, "applicationSync", app_body(secret, instanceId=instance))
    alice = auth_body([user("alice", role="admin")], instanceId=instance)
    await kit_ok(marketplace, "authSync", alice)
    return instance


async def calls(db: Database, interface: str) -> list[MarketplaceCall]:
    """The audit rows of one interface, oldest first."""
    found = await rows(db, MarketplaceCall, MarketplaceCall.interface == interface)
    return sorted(found, key=lambda c: c.id)


async def admin_page(client: httpx.AsyncClient, db: Database) -> list[tuple[str, str]]:
    await give_password(db, "alice")
    return await said_on_syncs_page(await signed_in_admin(client, "alice@acme"))


async def test_an_auth_sync_says_whom_it_added_and_disabled_and_the_sessions_it_ended(
    client: httpx.AsyncClient,
    marketplace: SignedCalls,
    db: Database,
    private_key: rsa.RSAPrivateKey,
) -> None:
    on = {"instanceId": await bound_tenant(marketplace, private_key)}
    people = [user("bob"), user("carol", enable="false"), user("dan")]
    await kit_ok(marketplace, "authSync", auth_body(people, currentSyncTime=stamp(2), **on))
    signed_in = await add_session(db, TENANT, "dan", 1)
    off = auth_body([user("dan", enable="false")], flag=2, currentSyncTime=stamp(3), **on)
    await kit_ok(marketplace, "authSync", off)
    assert await sessions_of(db, TENANT, "dan") == [], signed_in

    recorded = [c.changes for c in await calls(db, "authSync")]
    assert recorded[1:] == [
        {"app_id": "APP-1", "added": 3, "disabled": 1, "sessions_ended": 0},
        {"app_id": "APP-1", "added": 0, "disabled": 1, "sessions_ended": 1},
    ]
    dumped = json.dumps(recorded)  # no one's user name or name
    assert not [word for word in ("bob", "carol", "dan", "Name of") if word in dumped], dumped
    said = await admin_page(client, db)
    assert said[0][0] == said[1][0] == "authSync"
    assert "成员授权变更 Members' access changed" in said[0][1]
    assert "停用 1 名，结束 1 个会话 1 disabled, 1 session ended" in said[0][1]
    assert "成员授权 Members authorised 应用 App ：APP-1" in said[1][1]
    assert "新增 3 名，停用 1 名 3 added, 1 disabled" in said[1][1]
    # A repeat of the same call adds no one.
    again = auth_body([user("bob")], currentSyncTime=stamp(4), **on)
    await kit_ok(marketplace, "authSync", again)
    assert (await calls(db, "authSync"))[-1].changes == {
        "app_id": "APP-1",
        "added": 0,
        "disabled": 0,
        "sessions_ended": 0,
    }


async def test_de_authorised_and_deleted_members_are_counted_by_their_flag(
    marketplace: SignedCalls, db: Database, private_key: rsa.RSAPrivateKey
) -> None:
    on = {"instanceId": await bound_tenant(marketplace, private_key)}
    people = [user("bob"), user("carol"), user("dan")]
    await kit_ok(marketplace, "authSync", auth_body(people, currentSyncTime=stamp(2), **on))
    await add_session(db, TENANT, "bob", 1)
    cancel = auth_body([user("bob"), user("carol")], flag=3, currentSyncTime=stamp(3), **on)
    await kit_ok(marketplace, "authSync", cancel)
    delete = auth_body([user("dan")], flag=0, currentSyncTime=stamp(4), **on)
    await kit_ok(marketplace, "authSync", delete)
    back = auth_body([user("bob")], currentSyncTime=stamp(5), **on)  # authorised again
    await kit_ok(marketplace, "authSync", back)
    assert [c.changes for c in await calls(db, "authSync")][2:] == [
        {"app_id": "APP-1", "added": 0, "deauthorised": 2, "sessions_ended": 1},
        {"app_id": "APP-1", "added": 0, "deleted": 1, "sessions_ended": 0},
        {"app_id": "APP-1", "added": 1, "disabled": 0, "sessions_ended": 0},
    ]


async def test_full_department_syncs_say_how_many_were_listed_added_and_removed(
    client: httpx.AsyncClient,
    marketplace: SignedCalls,
    db: Database,
    private_key: rsa.RSAPrivateKey,
) -> None:
    on = {"instanceId": await bound_tenant(marketplace, private_key)}
    twelve = [org(f"D{i:02d}", name=f"部门{i}") for i in range(12)]
    await kit_ok(marketplace, "allOrgSync", all_org_body(twelve, timeStamp=stamp(2), **on))
    await kit_ok(marketplace, "allOrgSync", all_org_body(twelve[:10], timeStamp=stamp(3), **on))
    later = twelve[:9] + [org("D99", name="新部门")]
    await kit_ok(marketplace, "allOrgSync", all_org_body(later, timeStamp=stamp(4), **on))

    recorded = [c.changes for c in await calls(db, "allOrgSync")]
    assert recorded == [
        {"departments": 12, "added": 12, "removed": 0},
        {"departments": 10, "added": 0, "removed": 2},
        {"departments": 10, "added": 1, "removed": 1},
    ]
    assert "部门" not in json.dumps(recorded, ensure_ascii=False)  # no department's name
    said = [shown for interface, shown in await admin_page(client, db) if interface == "allOrgSync"]
    assert "部门全量同步 All departments synced 共 10 个部门，新增 1 个，删除 1 个" in said[0]
    assert "10 departments, 1 added, 1 removed" in said[0]
    assert "共 10 个部门，删除 2 个 10 departments, 2 removed" in said[1]
    assert "新增 12 个部门 12 departments added" in said[2]


async def test_a_single_department_is_named_as_it_is_now_and_an_older_call_changes_nothing(
    client: httpx.AsyncClient,
    marketplace: SignedCalls,
    db: Database,
    private_key: rsa.RSAPrivateKey,
) -> None:
    on = {"instanceId": await bound_tenant(marketplace, private_key)}
    await kit_ok(marketplace, "singleOrgSync", org_body("D4", "市场部", timeStamp=stamp(2), **on))
    renamed = org_body("D4", "市场与品牌部", timeStamp=stamp(4), **on)
    await kit_ok(marketplace, "singleOrgSync", renamed)
    late = org_body("D4", "旧名", timeStamp=stamp(3), **on)  # sent before the rename
    await kit_ok(marketplace, "singleOrgSync", late)
    gone = org_body("D4", "市场与品牌部", flag=0, timeStamp=stamp(5), **on)
    await kit_ok(marketplace, "singleOrgSync", gone)

    assert [c.changes for c in await calls(db, "singleOrgSync")] == [
        {"org_code": "D4", "change": "added"},
        {"org_code": "D4", "change": "changed"},
        {"org_code": "D4", "change": "stale"},
        {"org_code": "D4", "change": "removed"},
    ]
    said = [s for interface, s in await admin_page(client, db) if interface == "singleOrgSync"]
    assert "删除部门「市场与品牌部」 Department “市场与品牌部” removed" in said[0]
    assert "早于已保存的数据，未做更改 Older than what is stored; nothing changed" in said[1]
    assert "更新部门「市场与品牌部」" in said[2]
    assert "新增部门「市场与品牌部」" in said[3]  # its name now, not the one it came with


async def test_a_freeze_of_the_tenants_subscription_is_on_the_tenants_page(
    client: httpx.AsyncClient,
    marketplace: SignedCalls,
    db: Database,
    private_key: rsa.RSAPrivateKey,
) -> None:
    instance = await bound_tenant(marketplace, private_key)
    await add_session(db, TENANT, "alice", 1)
    for status in ("FREEZE", "FREEZE", "UNFREEZE"):
        body = {"activity": "updateInstanceStatus", "instanceId": instance, "status": status}
        assert (await marketplace.basic(body))["resultCode"] == "000000"

    freezes = await calls(db, "updateInstanceStatus")
    assert [(c.tenant_id, c.changes) for c in freezes] == [
        (TENANT, {"status": "frozen", "changed": True, "sessions_ended": 1, "tenants": 1}),
        (TENANT, {"status": "frozen", "changed": False, "sessions_ended": 0, "tenants": 1}),
        (TENANT, {"status": "unfrozen", "changed": True, "sessions_ended": 0, "tenants": 1}),
    ]
    said = await admin_page(client, db)
    assert [interface for interface, _ in said[:3]] == ["updateInstanceStatus"] * 3
    assert "订购解冻 Subscription unfrozen 订购已解冻，成员可以登录" in said[0][1]
    assert "Subscription unfrozen; members can sign in again" in said[0][1]
    assert "订购冻结 Subscription frozen 状态未变，为重复的调用" in said[1][1]
    assert "订购冻结 Subscription frozen 订购已冻结，成员不能登录，结束 1 个会话" in said[2][1]
    assert "Subscription frozen; members cannot sign in, 1 session ended" in said[2][1]


async def test_an_instance_bound_to_several_tenants_audits_its_call_under_none(
    marketplace: SignedCalls, db: Database
) -> None:
    """One call, one audit row: with two tenants bound it names neither, and counts them."""
    instance = await new_instance(marketplace)
    await kit_ok(marketplace, "tenantSync", tenant_body(instanceId=instance))
    other = tenant_body(instanceId=instance, tenantId="T-BETA", tenantCode="beta")
    await kit_ok(marketplace, "tenantSync", other)
    body = {"activity": "releaseInstance", "instanceId": instance}
    assert (await marketplace.basic(body))["resultCode"] == "000000"
    released = await one(db, MarketplaceCall, MarketplaceCall.interface == "releaseInstance")
    assert released.tenant_id is None
    assert released.changes == {
        "status": "released",
        "changed": True,
        "sessions_ended": 0,
        "tenants": 2,
    }


async def test_a_tenant_sync_and_an_app_sync_say_what_they_bound_and_unbound(
    marketplace: SignedCalls, db: Database, private_key: rsa.RSAPrivateKey
) -> None:
    instance = await bound_tenant(marketplace, private_key)
    await add_session(db, TENANT, "alice", 1)
    gone = app_body("", flag=0, instanceId=instance, timeStamp=stamp(2))
    await kit_ok(marketplace, "applicationSync", gone)
    unbound = tenant_body(instanceId=instance, flag=0, timeStamp=stamp(3))
    await kit_ok(marketplace, "tenantSync", unbound)
    assert [c.changes for c in await calls(db, "applicationSync")] == [
        {"app_id": "APP-1", "change": "bound", "sessions_ended": 0},
        {"app_id": "APP-1", "change": "unbound", "sessions_ended": 1},
    ]
    created, removed = [c.changes for c in await calls(db, "tenantSync")]
    assert created == {
        "created": True,
        "bound": True,
        "unbound": False,
        "removed": False,
        "signed_out": False,
        "apps_stopped": False,
        "sessions_ended": 0,
    }
    assert removed == {**created, "created": False, "bound": False} | {
        "unbound": True,
        "removed": True,
        "signed_out": True,
    }


async def test_a_debug_call_records_that_it_changed_nothing(
    client: httpx.AsyncClient,
    marketplace: SignedCalls,
    db: Database,
    private_key: rsa.RSAPrivateKey,
) -> None:
    instance = await bound_tenant(marketplace, private_key)
    rehearsal = auth_body([user("eve")], testFlag=1, currentSyncTime=stamp(2), instanceId=instance)
    await kit_ok(marketplace, "authSync", rehearsal)
    body = {"activity": "updateInstanceStatus", "instanceId": instance, "status": "FREEZE"}
    assert (await marketplace.basic({**body, "testFlag": "1"}))["resultCode"] == "000000"

    debug = await rows(db, MarketplaceCall, MarketplaceCall.test.is_(True))
    assert sorted((c.interface, c.tenant_id, c.changes) for c in debug) == [
        ("authSync", TENANT, {}),
        ("updateInstanceStatus", TENANT, {}),
    ]
    said = await admin_page(client, db)
    for interface, shown in said[:2]:
        assert "调试 Test 调试调用，未做任何更改 Test call: nothing was changed" in shown, interface


async def test_a_call_audited_before_changes_were_recorded_says_so(
    client: httpx.AsyncClient,
    marketplace: SignedCalls,
    db: Database,
    private_key: rsa.RSAPrivateKey,
) -> None:
    await bound_tenant(marketplace, private_key)
    async with db.transaction() as session:
        session.add(MarketplaceCall(**OLD_CALL, received_at=datetime(2026, 1, 1)))
    [old] = [
        shown for interface, shown in await admin_page(client, db) if interface == "allOrgSync"
    ]
    assert old.endswith(
        "部门全量同步 All departments synced "
        "变更未记录（早于本版本） Changes not recorded (before this version) 成功 Done"
    ), old


def call_row(interface: str, code: str, changes: dict[str, Any] | None) -> SyncRow:
    return SyncRow(1, interface, code, "", datetime(2026, 1, 1), False, "I-1", 1.0, changes)


def test_a_failed_call_says_its_result_and_a_renewal_its_scene() -> None:
    """`describe` alone: a failed call says only its result; the lifecycle calls' words."""
    failed = sync_log.describe(call_row("authSync", "000005", {}), {}, {})
    assert (failed.changes, failed.result, failed.done) == (
        [],
        ("本服务内部错误，云商店会重试", "Failed here; KooGallery retries"),
        False,
    )
    renewed = call_row("refreshInstance", "000000", {"scene": "RENEWAL", "tenants": 1})
    assert sync_log.describe(renewed, {}, {}).changes == [("订购已续费", "Subscription renewed")]
    upgraded = call_row("upgradeInstance", "000000", {"upgraded": True, "tenants": 1})
    assert sync_log.describe(upgraded, {}, {}).changes == [("订购规格已升级", "Plan upgraded")]


# --- the revision ------------------------------------------------------------------------------


OLD_CALL: dict[str, Any] = {
    "interface": "allOrgSync",
    "tenant_id": TENANT,
    "instance_id": "I-1",
    "payload_sha256": "0" * 64,
    "result_code": "000000",
    "result_msg": "success.",
    "latency_ms": 3.5,
    "test": False,
}


@pytest.fixture
def scratch_url(tmp_path: Path) -> Iterator[str]:
    """A database of its own: this test moves it between schema revisions."""
    server = os.environ.get("IDENTITY_TEST_DATABASE_URL")
    if not server:
        yield f"sqlite+aiosqlite:///{tmp_path / 'identity.db'}"
        return
    with scratch_postgres(server, "identity_changes") as url:
        yield url


async def _calls(url: str, statement: str, **values: object) -> list[Any]:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement), values)
            columns = await conn.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("marketplace_calls")}
            )
            return [columns, *(result.all() if result.returns_rows else [])]
    finally:
        await engine.dispose()


async def test_revision_0013_adds_the_column_and_goes_back_keeping_the_calls(
    scratch_url: str,
) -> None:
    config = alembic_config(scratch_url, SecretStr(SECRET_KEY))
    await asyncio.to_thread(upgrade, scratch_url)
    await asyncio.to_thread(command.downgrade, config, "0012")
    names = ", ".join(OLD_CALL)
    values = {**OLD_CALL, "received_at": datetime(2026, 1, 1)}
    insert = f"INSERT INTO marketplace_calls ({names}, received_at) VALUES "
    columns, *_ = await _calls(
        scratch_url, insert + f"({', '.join(':' + n for n in values)})", **values
    )
    assert "changes" not in columns

    await asyncio.to_thread(command.upgrade, config, "0013")
    columns, *found = await _calls(scratch_url, "SELECT interface, changes FROM marketplace_calls")
    assert "changes" in columns and found == [("allOrgSync", None)]

    await asyncio.to_thread(command.downgrade, config, "0012")
    columns, *found = await _calls(scratch_url, "SELECT interface FROM marketplace_calls")
    assert "changes" not in columns and found == [("allOrgSync",)]
    await asyncio.to_thread(command.upgrade, config, "head")
