"""The console's lists as the admin reads them, through the real app over ASGI (the admin signs in
with a local password): the syncs page says in both languages what each marketplace call was
and what it changed (added, disabled, deleted, departments), names the app, gives the result in
words and keeps the raw interface and code to a folded detail; the member list says where the
page stands and how many match, counting exactly up to a threshold and "more than" past it."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator

import httpx2 as httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import event

from identity.admin import service
from identity.db import Database
from identity.marketplace.client_secret import encrypt_client_secret
from identity.provider import clients
from tests.helpers.admin_rows import TENANT, Person, add_people, add_tenant, give_password
from tests.helpers.kit_bodies import (
    APP,
    all_org_body,
    app_body,
    auth_body,
    kit_ok,
    new_instance,
    org,
    org_body,
    stamp,
    tenant_body,
    user,
)
from tests.helpers.marketplace_client import SignedCalls
from tests.helpers.syncs_page import signed_in_admin, sync_rows, text_of

# --- the syncs page ---------------------------------------------------------------------------


DEPARTMENTS = [org("D1", name="研发部"), org("D2", "D1", "前端组"), org("D3", name="销售部")]


async def provision(marketplace: SignedCalls, private_key: rsa.RSAPrivateKey) -> dict[str, str]:
    """acme bound, its app, three departments, alice (admin), bob and carol (disabled);
    returns the calls' `instanceId`."""
    instance = await new_instance(marketplace)
    on = {"instanceId": instance}
    await kit_ok(marketplace, "tenantSync", tenant_body(**on))
    secret = encrypt_client_secret(private_key.public_key(), "s3cret")
    await kit_ok(marketplace, "applicationSync", app_body(secret, **on))
    await kit_ok(marketplace, "allOrgSync", all_org_body(DEPARTMENTS, **on))
    people = [user("alice", role="admin"), user("bob"), user("carol", enable="false")]
    await kit_ok(marketplace, "authSync", auth_body(people, **on))
    return on


async def test_each_call_is_told_in_words_with_what_it_changed(
    client: httpx.AsyncClient,
    marketplace: SignedCalls,
    db: Database,
    private_key: rsa.RSAPrivateKey,
) -> None:
    on = await provision(marketplace, private_key)
    await kit_ok(marketplace, "singleOrgSync", org_body("D4", "市场部", timeStamp=stamp(2), **on))
    gone = auth_body([user("bob")], flag=0, currentSyncTime=stamp(2), **on)
    await kit_ok(marketplace, "authSync", gone)
    refused = tenant_body(domainName="ftp://acme.example.com", timeStamp=stamp(3), **on)
    assert (await marketplace.kit("tenantSync", refused))["resultCode"] == "000002"
    rehearsal = auth_body([user("dan")], testFlag=1, currentSyncTime=stamp(3), **on)
    await kit_ok(marketplace, "authSync", rehearsal)
    await give_password(db, "alice")
    admin = await signed_in_admin(client, "alice@acme")

    # No OpenID client names the app yet: it goes by its id.
    first = await admin.get("/admin/syncs")
    assert first.status_code == 200, first.text
    assert f"应用 App ：{APP}" in text_of(first.text)

    callback = ["https://app.example.com/cb"]
    registration = clients.Registration(APP, "Acme 报表", callback, [], None, None, False)
    async with db.transaction() as session:
        await clients.add(session, registration)
    page = (await admin.get("/admin/syncs")).text
    rows = sync_rows(page)
    assert [interface for interface, _, _ in rows] == [
        "authSync",  # the rehearsal (testFlag=1)
        "tenantSync",  # refused
        "authSync",  # bob deleted
        "singleOrgSync",
        "authSync",
        "allOrgSync",
        "applicationSync",
        "tenantSync",
    ]
    said = [shown for _, shown, _ in rows]
    assert "成员授权 Members authorised 调试 Test" in said[0]
    assert "调试调用，未做任何更改 Test call: nothing was changed" in said[0]
    assert "租户同步 Enterprise synced" in said[1]
    assert "请求内容有误 Request refused as malformed" in said[1]
    assert (
        "成员授权变更 Members' access changed 应用 App ：Acme 报表 删除 1 名 1 deleted" in said[2]
    )
    assert "部门同步 Department synced 新增部门「市场部」 Department “市场部” added" in said[3]
    assert "应用 App ：Acme 报表 新增 3 名，停用 1 名 3 added, 1 disabled" in said[4]
    assert "成功 Done" in said[4]
    assert "部门全量同步 All departments synced 新增 3 个部门 3 departments added" in said[5]
    assert "应用绑定 App bound 应用 App ：Acme 报表" in said[6]
    assert "租户同步 Enterprise synced 企业已开通 Enterprise set up" in said[7]
    # Raw names and codes only in the folded detail.
    for interface, shown, detail in rows:
        assert interface not in shown and "000000" not in shown and "success." not in shown
        assert interface in detail and "原因代码 Reason code" in detail
    assert "000002" in rows[1][2] and "domainName" in rows[1][2]
    assert "000000 说明 Message success." in rows[4][2]


async def test_removals_are_told_too(
    client: httpx.AsyncClient,
    marketplace: SignedCalls,
    db: Database,
    private_key: rsa.RSAPrivateKey,
) -> None:
    on = await provision(marketplace, private_key)
    later = {"timeStamp": stamp(2), **on}
    secret = encrypt_client_secret(private_key.public_key(), "other")
    await kit_ok(marketplace, "applicationSync", app_body(secret, appId="APP-2", **later))
    gone = app_body("", appId="APP-2", flag=0, timeStamp=stamp(3), **on)
    await kit_ok(marketplace, "applicationSync", gone)
    cancelled = auth_body([user("bob")], flag=3, currentSyncTime=stamp(2), **on)
    await kit_ok(marketplace, "authSync", cancelled)
    await kit_ok(marketplace, "allOrgSync", all_org_body(DEPARTMENTS[:2], **later))
    await kit_ok(marketplace, "singleOrgSync", org_body("D2", "Web 组", parentCode="D1", **later))
    await give_password(db, "alice")
    admin = await signed_in_admin(client, "alice@acme")

    rows = sync_rows((await admin.get("/admin/syncs")).text)
    said = [shown for _, shown, _ in rows[:5]]
    assert "部门同步 Department synced 更新部门「Web 组」 Department “Web 组” updated" in said[0]
    # A full sync records counts, not which departments it removed.
    assert "部门全量同步 All departments synced 共 2 个部门，删除 1 个" in said[1]
    assert "2 departments, 1 removed" in said[1]
    assert (
        "成员授权变更 Members' access changed 应用 App ：APP-1 取消授权 1 名 1 de-authorised"
        in said[2]
    )
    assert "应用解绑 App unbound 应用 App ：APP-2 成员不能再登录此应用" in said[3]
    assert "Members can no longer sign in" in said[3]
    assert "应用绑定 App bound 应用 App ：APP-2" in said[4]


# --- the member list's summary ----------------------------------------------------------------


@pytest.fixture
async def admin(client: httpx.AsyncClient, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """acme's admin alice, signed in, with 120 more members: m000 … m119, every tenth
    disabled."""
    await add_tenant(db)
    people = [Person(f"m{i:03d}", enabled=i % 10 != 3) for i in range(120)]
    await add_people(db, Person("alice", role="admin"), *people)
    await give_password(db, "alice")
    yield await signed_in_admin(client, "alice@Acme")


async def summary(admin: httpx.AsyncClient, url: str) -> tuple[str, str]:
    """The page's summary line, and the address of its next page ("" on the last)."""
    page = await admin.get(url)
    assert page.status_code == 200, page.text
    found = re.search(r'<p class="summary" id="summary">(.*?)</p>', page.text, re.S)
    assert found, page.text
    following = re.search(r'id="next" href="([^"]+)"', page.text)
    return text_of(found.group(1)), html.unescape(following.group(1)) if following else ""


async def test_the_summary_says_which_members_the_page_shows_of_how_many(
    admin: httpx.AsyncClient,
) -> None:
    said, following = await summary(admin, "/admin")
    assert said == "第 1–50 名，共 121 名 1–50 of 121"
    said, following = await summary(admin, following)
    assert said == "第 51–100 名，共 121 名 51–100 of 121"
    said, following = await summary(admin, following)
    assert (said, following) == ("第 101–121 名，共 121 名 101–121 of 121", "")
    assert (await summary(admin, "/admin?q=m11"))[0] == "第 1–10 名，共 10 名 1–10 of 10"
    assert (await summary(admin, "/admin?q=alice"))[0] == "第 1 名，共 1 名 1 of 1"
    disabled = await summary(admin, "/admin?state=disabled")
    assert disabled[0] == "第 1–12 名，共 12 名 1–12 of 12"


async def test_past_the_threshold_it_says_more_than(
    admin: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "COUNT_EXACT_UP_TO", 60)
    said, following = await summary(admin, "/admin")
    assert said == "第 1–50 名，共 60+ 名 1–50 of more than 60"
    said, following = await summary(admin, following)
    assert said == "第 51–100 名，共 60+ 名 51–100 of more than 60"
    said, _ = await summary(admin, following)  # 100 come before it: past the threshold
    assert said == "第 60 名之后的 21 名，共 60+ 名 21 past the first 60, of more than 60"
    # Counted exactly again when the filters leave fewer.
    assert (await summary(admin, "/admin?q=m1"))[0] == "第 1–20 名，共 20 名 1–20 of 20"
    assert (await summary(admin, "/admin?state=disabled"))[0] == "第 1–12 名，共 12 名 1–12 of 12"
    # A state other than disabled is checked on the first members only: past the threshold
    # the total is not counted, and the page says so.
    said, _ = await summary(admin, "/admin?state=enabled")
    assert said == (
        "第 1–50 名；总数未统计（需核对状态的成员超过 60 名） "
        "1–50; total not counted (more than 60 members' states to check)"
    )
    assert (await summary(admin, "/admin?state=enabled&q=m05"))[0] == (
        "第 1–9 名，共 9 名 1–9 of 9"
    )


async def test_the_bounded_count_reads_at_most_the_threshold(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count is `SELECT count(*) FROM (SELECT … LIMIT threshold + 1)`: past the threshold
    it stops, whatever the tenant's size."""
    await add_tenant(db)
    await add_people(db, *(Person(f"m{i:03d}") for i in range(30)))
    monkeypatch.setattr(service, "COUNT_EXACT_UP_TO", 29)
    seen: list[str] = []

    def remember(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        seen.append(statement)

    async with db.read() as session:
        query = service.MemberQuery()
        page = await service.members(session, TENANT, query)
        engine = session.sync_session.get_bind()
        event.listen(engine, "before_cursor_execute", remember)
        try:
            counted = await service.member_summary(session, TENANT, query, page)
        finally:
            event.remove(engine, "before_cursor_execute", remember)
    assert counted.total == service.Count(29, False) and counted.first == 1
    assert len(seen) == 1 and "count(*)" in seen[0] and "LIMIT" in seen[0]
