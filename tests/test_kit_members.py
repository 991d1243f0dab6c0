"""authSync: members and their app authorisations (contract §3.3)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from identity.db import Database
from identity.models import Authorisation, Member
from tests.helpers.kit_bodies import (
    APP,
    INVALID,
    SUCCESS,
    TENANT,
    auth_body,
    count,
    kit_ok,
    one,
    stamp,
    user,
    users,
)
from tests.helpers.marketplace_client import SignedCalls

V1_USERS = [
    {
        "userName": "zhangsan01",
        "name": "张三",
        "position": "系统管理员",
        "orgCode": "123456789",
        "role": "admin",
        "enable": "true",
        "employeeCode": "",
        "mobile": "",
        "email": "",
        "extension": {"entryDate": "2022-11-9", "employeeType": "4", "workPlace": "南京"},
    },
    {
        "userName": "lisi02",
        "name": "李四",
        "position": "运营经理",
        "orgCode": "123456789",
        "role": "user",
        "enable": "true",
        "extension": {"entryDate": "2022-11-16", "employeeType": "4", "workPlace": "南京"},
    },
]


async def sync(marketplace: SignedCalls, user_list: Any, **overrides: Any) -> None:
    await kit_ok(marketplace, "authSync", auth_body(user_list, **overrides))


async def member(db: Database, user_name: str) -> Member:
    return await one(db, Member, Member.user_name == user_name)


async def grant(db: Database, user_name: str) -> Authorisation:
    return await one(db, Authorisation, Authorisation.user_name == user_name)


async def states(db: Database, user_name: str) -> tuple[str, str, bool]:
    """(member state, authorisation state, enabled)."""
    a = await grant(db, user_name)
    return (await member(db, user_name)).state, a.state, a.enabled


async def test_v2_flat_users_are_stored_with_every_field(
    marketplace: SignedCalls, db: Database
) -> None:
    full = user(
        "alice",
        name="Alice",
        orgCode="D7",
        role="admin",
        position="CTO",
        employeeCode="E-1",
        employeeType=2,
        mobile="+8613800000000",
        email="alice@acme.example.com",
        workPlace="Shenzhen",
        entryDate="2022-11-9",
    )
    await sync(marketplace, [full, user("bob")])
    m = await member(db, "alice")
    assert (m.tenant_id, m.name, m.org_code, m.position, m.employee_code, m.employee_type) == (
        TENANT,
        "Alice",
        "D7",
        "CTO",
        "E-1",
        2,
    )
    assert (m.mobile, m.email, m.work_place, m.entry_date) == (
        "+8613800000000",
        "alice@acme.example.com",
        "Shenzhen",
        "2022-11-9",
    )
    a = await grant(db, "alice")
    assert (a.app_id, a.role, a.enabled, a.state) == (APP, "admin", True, "active")
    assert (await grant(db, "bob")).role == "user"


@pytest.mark.parametrize("as_string", [False, True], ids=["list", "json-string"])
async def test_v1_extension_shape_is_flattened(
    marketplace: SignedCalls, db: Database, as_string: bool
) -> None:
    user_list: Any = json.dumps(V1_USERS, ensure_ascii=False) if as_string else V1_USERS
    await sync(marketplace, user_list)
    m = await member(db, "zhangsan01")
    assert (m.name, m.employee_type, m.work_place, m.entry_date) == ("张三", 4, "南京", "2022-11-9")
    assert (await member(db, "lisi02")).entry_date == "2022-11-16"
    assert (await grant(db, "zhangsan01")).role == "admin"


async def test_enable_strings_toggle_the_authorisation(
    marketplace: SignedCalls, db: Database
) -> None:
    await sync(marketplace, [user("alice", enable="false")])
    assert await states(db, "alice") == ("active", "active", False)
    await sync(marketplace, [user("alice", enable="true")], flag=2, currentSyncTime=stamp(2))
    assert await states(db, "alice") == ("active", "active", True)


async def test_modify_updates_name_role_and_department(
    marketplace: SignedCalls, db: Database
) -> None:
    await sync(marketplace, [user("alice")])
    changed = user("alice", name="Alice B", role="admin", orgCode="D9")
    await sync(marketplace, [changed], flag=2, currentSyncTime=stamp(2))
    m, a = await member(db, "alice"), await grant(db, "alice")
    assert (m.name, m.org_code, a.role) == ("Alice B", "D9", "admin")


async def test_delete_tombstones_the_member(marketplace: SignedCalls, db: Database) -> None:
    await sync(marketplace, [user("alice"), user("bob")])
    for n in (2, 3):  # a repeated delete also answers success
        await sync(marketplace, [user("alice")], flag=0, currentSyncTime=stamp(n))
    assert await states(db, "alice") == ("deleted", "deleted", True)
    assert await states(db, "bob") == ("active", "active", True)


async def test_delete_of_an_unknown_member_succeeds(marketplace: SignedCalls, db: Database) -> None:
    await sync(marketplace, [user("ghost")], flag=0)
    assert (await member(db, "ghost")).state == "deleted"


async def test_cancel_keeps_the_member_but_ends_the_authorisation(
    marketplace: SignedCalls, db: Database
) -> None:
    await sync(marketplace, [user("alice")])
    await sync(marketplace, [user("alice")], flag=3, currentSyncTime=stamp(2))
    assert await states(db, "alice") == ("active", "cancelled", True)


async def test_repeated_add_keeps_one_row_per_member(
    marketplace: SignedCalls, db: Database
) -> None:
    for _ in range(3):
        await sync(marketplace, [user("alice"), user("bob")])
    assert await count(db, Member) == 2
    assert await count(db, Authorisation) == 2


async def test_the_same_member_twice_in_one_call_is_one_row(
    marketplace: SignedCalls, db: Database
) -> None:
    await sync(marketplace, [user("alice", name="First"), user("alice", name="Last")])
    assert (await member(db, "alice")).name == "Last"


@pytest.mark.parametrize("time_field", ["currentSyncTime", "timeStamp"])
async def test_an_older_sync_after_a_newer_one_is_ignored(
    marketplace: SignedCalls, db: Database, time_field: str
) -> None:
    def at(n: int, **fields: Any) -> dict[str, Any]:
        body = auth_body([user("alice", **fields)], **{time_field: stamp(n)})
        if time_field == "timeStamp":
            del body["currentSyncTime"]  # the fallback when currentSyncTime is absent
        return body

    await kit_ok(marketplace, "authSync", at(5, name="Newest"))
    stale_delete = {**at(3, name="Stale"), "flag": 0}
    assert (await marketplace.kit("authSync", stale_delete))["resultCode"] == SUCCESS
    await kit_ok(marketplace, "authSync", at(4, name="Stale", role="admin"))
    assert (await member(db, "alice")).name == "Newest"
    assert await states(db, "alice") == ("active", "active", True)
    assert (await grant(db, "alice")).role == "user"


async def test_current_sync_time_wins_over_time_stamp(
    marketplace: SignedCalls, db: Database
) -> None:
    await sync(marketplace, [user("alice", name="A")], currentSyncTime=stamp(5), timeStamp=stamp(1))
    late = {"currentSyncTime": stamp(4), "timeStamp": stamp(9)}
    await sync(marketplace, [user("alice", name="B")], **late)
    assert (await member(db, "alice")).name == "A"


async def test_five_hundred_users_in_one_call(marketplace: SignedCalls, db: Database) -> None:
    await sync(marketplace, users(500))
    assert await count(db, Member) == 500
    assert await count(db, Authorisation, Authorisation.state == "active") == 500


@pytest.mark.parametrize(
    "user_list",
    [
        pytest.param(users(501), id="501-users"),
        pytest.param([*users(499), user("bad", role="owner")], id="one-bad-user-of-500"),
    ],
)
async def test_a_call_is_all_or_nothing(
    marketplace: SignedCalls, db: Database, user_list: list[dict[str, Any]]
) -> None:
    answer = await marketplace.kit("authSync", auth_body(user_list))
    assert answer["resultCode"] == INVALID, answer
    assert "userList" in answer["resultMsg"]
    assert await count(db, Member) == 0
    assert await count(db, Authorisation) == 0


async def test_seller_test_tenant_with_empty_instance_is_persisted(
    marketplace: SignedCalls, db: Database
) -> None:
    await sync(marketplace, [user("seller-tester")], instanceId="")
    a = await grant(db, "seller-tester")
    assert (a.instance_id, a.state) == ("", "active")
