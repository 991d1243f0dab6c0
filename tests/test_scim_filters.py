"""SCIM filters and paging over HTTP, as an app's backend reads a large directory: every filter
finds exactly the Users scim2-models' own evaluator finds among the rendered resources (the
reference), what cannot be translated is a 400 `invalidFilter`, incremental reads by
`meta.lastModified`, and pages by index and by cursor that neither repeat nor miss anyone."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

import httpx2 as httpx
import pytest
from scim2_models import ScimFilter
from sqlalchemy import insert, update

from identity.db import Database, utcnow
from identity.models import Authorisation, Department, Member
from identity.provider import clients
from identity.scim import resources
from identity.scim.resources import GroupResource, UserResource
from tests.helpers.admin_rows import APP, STAMP, TENANT, add_tenant

BASE = f"/scim/v2/{TENANT}"
KOO = resources.USER_SCHEMA
PEOPLE: list[dict[str, Any]] = [
    {"user_name": "alice", "name": "Alice Liu", "org_code": "D1", "email": "Alice@Acme.example.com",
     "mobile": "+8613800000001", "position": "CTO", "employee_code": "E-1", "employee_type": 2,
     "work_place": "Shenzhen", "entry_date": "2022-11-9", "role": "admin"},
    {"user_name": "Alice", "name": "Alice Two", "org_code": "D2",
     "email": "alice2@other.example.org"},
    {"user_name": "bob", "name": "Bob", "org_code": "D1", "enabled": False},
    {"user_name": "carol", "name": "Carol", "org_code": "D2", "auth_state": "cancelled",
     "position": "Engineer"},
    {"user_name": "dan@home", "name": "Dan", "org_code": "D9", "email": "dan@acme.example.com"},
    {"user_name": "evangeline.longname", "name": "Evangeline", "org_code": "D1"},
    {"user_name": "gone", "name": "Gone", "org_code": "D1", "member_state": "deleted"},
    {"user_name": "frank", "name": "Frank", "org_code": "D5", "position": "", "email": "",
     "employee_code": ""},
]  # fmt: skip
DEPARTMENTS = [("D1", "Sales", ""), ("D2", "East Sales", "D1"), ("D3", "Ops", ""),
               ("D4", "Closed", ""), ("D5", "", "")]  # fmt: skip
"""D4 is deleted; D5 has no name (an empty string is no value, in a filter as in a resource)."""


async def add_members(db: Database, people: list[dict[str, Any]], app_id: str = APP) -> None:
    fields = ("position", "employee_code", "employee_type", "mobile", "email", "work_place",
              "entry_date")  # fmt: skip
    members = [
        {
            **{k: p.get(k) for k in fields},
            "tenant_id": TENANT,
            "user_name": p["user_name"],
            "name": p["name"],
            "org_code": p.get("org_code", "D1"),
            "state": p.get("member_state", "active"),
            "last_sync_time": STAMP,
        }
        for p in people
    ]
    grants = [
        {
            "tenant_id": TENANT,
            "app_id": app_id,
            "user_name": p["user_name"],
            "instance_id": "",
            "role": p.get("role", "user"),
            "enabled": p.get("enabled", True),
            "state": p.get("auth_state", "active"),
            "last_sync_time": STAMP,
        }
        for p in people
    ]
    async with db.transaction() as s:
        await s.execute(insert(Member), members)
        await s.execute(insert(Authorisation), grants)


class Reader:
    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http, self.token = http, token

    async def get(self, path: str, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return await self.http.get(f"{BASE}/{path}", params=params, headers=headers)

    async def found(self, path: str = "Users", **params: Any) -> dict[str, Any]:
        answer = await self.get(path, **params)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def ids(self, path: str = "Users", **params: Any) -> set[str]:
        return {r["id"] for r in (await self.found(path, count="200", **params))["Resources"]}


@pytest.fixture
async def scim(client: httpx.AsyncClient, db: Database) -> Reader:
    await add_tenant(db)
    await add_members(db, PEOPLE)
    await add_members(db, [{"user_name": "zoe", "name": "Zoe"}], app_id="APP-2")
    async with db.transaction() as s:
        for code, name, parent in DEPARTMENTS:
            state = "deleted" if name == "Closed" else "active"
            s.add(Department(tenant_id=TENANT, org_code=code, name=name, parent_code=parent,
                             state=state, last_sync_time=STAMP))  # fmt: skip
    registration = clients.Registration(APP, "Reader", [], [], None, None, public=False,
                                        scopes=[clients.DIRECTORY_SCOPE])  # fmt: skip
    async with db.transaction() as s:
        added = await clients.add(s, registration)
    basic = base64.b64encode(f"{added.client_id}:{added.secret}".encode()).decode()
    token = await client.post("/oauth2/token", data={"grant_type": "client_credentials"},
                              headers={"Authorization": f"Basic {basic}"})  # fmt: skip
    return Reader(client, token.json()["access_token"])


def uid(user_name: str) -> str:
    return resources.user_id(user_name)


USER_FILTERS = [
    'userName eq "alice@acme"',
    'userName eq "ALICE@ACME"',
    'userName eq "alice@other"',
    'userName eq "dan@home@acme"',
    'userName eq "EVANGELINE.LONGNAME@Acme"',
    'userName ne "bob@acme"',
    'userName sw "AL"',
    'userName co "@home"',
    'userName ew "e@acme"',
    "active eq true",
    "active eq false",
    "not (active eq true)",
    'emails.value eq "alice@acme.example.com"',
    'emails[value eq "ALICE@ACME.EXAMPLE.COM"]',
    'emails co "acme.example"',
    'emails ew ".org"',
    "emails pr",
    "not (emails pr)",
    'emails[value sw "dan" and primary eq true]',
    'phoneNumbers[type eq "mobile"]',
    "title pr",
    'title eq "cto"',
    'title ne "CTO"',
    'title gt "D"',
    'displayName sw "alice"',
    'name.formatted co "two"',
    'userType eq "2"',
    'roles.value eq "admin"',
    f'id eq "{uid("carol")}"',
    f'id ne "{uid("carol")}"',
    'id eq "not-an-id"',
    f'groups.value eq "{resources.group_id("D1")}"',
    f'groups[value eq "{resources.group_id("D2")}"]',
    'groups.display eq "east sales"',
    "groups.display pr",
    "displayName pr",
    "groups pr",
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Sales"',
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "D9"',
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "e-1"',
    f'{KOO}:orgCode eq "D1"',
    f'{KOO}:orgCode eq "d1"',
    f'{KOO}:workPlace sw "shen"',
    f"{KOO}:entryDate pr",
    'meta.resourceType eq "User"',
    'externalId eq "x"',
    'externalId ne "x"',
    "externalId pr",
    'name.givenName eq "Alice"',
    'nickName pr or userName eq "bob@acme"',
    "active eq true and (emails pr or title pr)",
    'userName sw "a" or userName sw "b" and active eq false',
    'not (userName sw "a" or title pr)',
]


@pytest.mark.parametrize("expression", USER_FILTERS)
async def test_a_user_filter_finds_what_the_reference_evaluator_finds(
    scim: Reader, expression: str
) -> None:
    everyone = (await scim.found("Users", count="200"))["Resources"]
    parsed = ScimFilter[UserResource](expression)  # type: ignore[type-arg,valid-type]
    expected = {u["id"] for u in everyone if parsed.match(UserResource.model_validate(u))}
    answer = await scim.found("Users", filter=expression, count="200")
    assert {u["id"] for u in answer["Resources"]} == expected
    assert answer["totalResults"] == len(expected)


async def test_the_reference_sees_what_the_tests_mean(scim: Reader) -> None:
    """A few filters spelled out, so that the comparison above cannot agree on nothing."""
    assert await scim.ids(filter='userName eq "ALICE@acme"') == {uid("alice"), uid("Alice")}
    assert await scim.ids(filter='userName eq "dan@home@ACME"') == {uid("dan@home")}
    assert await scim.ids(filter="active eq false") == {uid("bob"), uid("carol")}
    assert await scim.ids(filter='emails[value eq "alice@acme.example.com"]') == {uid("alice")}
    assert await scim.ids(filter="externalId pr") == set()
    assert len(await scim.ids(filter='externalId ne "x"')) == 7  # "gone" and zoe are no Users


GROUP_FILTERS = [
    'displayName eq "sales"',
    'displayName sw "East"',
    'displayName co "sale"',
    f'id eq "{resources.group_id("D3")}"',
    f'members.value eq "{uid("bob")}"',
    f'members[value eq "{uid("zoe")}"]',
    "members pr",
    "not (members pr)",
    f'{resources.GROUP_SCHEMA}:parent.value eq "{resources.group_id("D1")}"',
    f"{resources.GROUP_SCHEMA}:parent pr",
    f'{resources.GROUP_SCHEMA}:orgCode eq "D2"',
    'meta.resourceType eq "Group" and displayName ew "sales"',
]


@pytest.mark.parametrize("expression", GROUP_FILTERS)
async def test_a_group_filter_finds_what_the_reference_evaluator_finds(
    scim: Reader, expression: str
) -> None:
    groups = (await scim.found("Groups"))["Resources"]
    parsed = ScimFilter[GroupResource](expression)  # type: ignore[type-arg,valid-type]
    expected = {g["id"] for g in groups if parsed.match(GroupResource.model_validate(g))}
    assert await scim.ids("Groups", filter=expression) == expected


async def test_groups_are_the_active_departments_and_members_the_apps_users(scim: Reader) -> None:
    assert await scim.ids("Groups") == {resources.group_id(c) for c in ("D1", "D2", "D3", "D5")}
    sales = resources.group_id("D1")
    bob_in = await scim.ids("Groups", filter=f'members.value eq "{uid("bob")}"')
    assert bob_in == {sales}
    assert await scim.ids("Groups", filter=f'members.value eq "{uid("zoe")}"') == set()


REFUSED = [
    ('userName eq "alice', "invalid syntax"),
    ("userName xx 1", "invalid syntax"),
    ('bogus eq "x"', "bogus"),
    (f'{KOO}:subject eq "abc"', "subject cannot be filtered on"),
    ('meta.version eq "W/\\"x\\""', "meta.version cannot be filtered on"),
    ('groups.$ref eq "x"', "groups.$ref cannot be filtered on"),
    ('id sw "YW"', "compares with eq and ne only"),
    ('meta.lastModified co "2026"', "compares with dateTime values only"),
    ("active gt true", "boolean"),
    ('emails[type eq "work" and emails[value pr]]', "invalid syntax"),
    ('userName eq "al\\u0000ice@acme"', "control character"),
]


@pytest.mark.parametrize(("expression", "detail"), REFUSED)
async def test_what_cannot_be_read_faithfully_is_an_invalid_filter(
    scim: Reader, expression: str, detail: str
) -> None:
    answer = await scim.get("Users", filter=expression)
    assert answer.status_code == 400, answer.text
    assert answer.json()["scimType"] == "invalidFilter"
    assert detail in answer.json()["detail"]


async def test_incremental_reads_by_last_modified(scim: Reader, db: Database) -> None:
    everyone = (await scim.found("Users", count="200"))["Resources"]
    newest = max(u["meta"]["lastModified"] for u in everyone)
    assert await scim.ids(filter=f'meta.lastModified gt "{newest}"') == set()
    assert len(await scim.ids(filter=f'meta.lastModified ge "{newest}"')) >= 1
    later = utcnow() + timedelta(seconds=1)
    async with db.transaction() as s:  # as a sync writes it: updated_at set with the row
        await s.execute(
            update(Member).where(Member.user_name == "bob").values(name="Robert", updated_at=later)
        )
        await s.execute(
            update(Authorisation)
            .where(Authorisation.user_name == "carol")
            .values(enabled=False, updated_at=later)
        )
        await s.execute(
            update(Department)
            .where(Department.org_code == "D2")
            .values(name="East", updated_at=later)
        )
    changed = await scim.found("Users", filter=f'meta.lastModified gt "{newest}"')
    by_id = {u["id"]: u for u in changed["Resources"]}
    # bob's member row, carol's authorisation, and Alice's department (its name is hers too).
    assert set(by_id) == {uid("bob"), uid("carol"), uid("Alice")}
    assert by_id[uid("bob")]["displayName"] == "Robert"
    assert by_id[uid("Alice")]["groups"][0]["display"] == "East"
    stamp = later.isoformat() + "Z"
    assert by_id[uid("bob")]["meta"]["lastModified"] == stamp
    lt = await scim.ids(filter=f'meta.lastModified lt "{stamp}"')
    assert lt == {u["id"] for u in everyone} - set(by_id)


async def test_pages_by_index_neither_repeat_nor_miss(scim: Reader, db: Database) -> None:
    await add_members(db, [{"user_name": f"p{n:03d}", "name": f"P{n}"} for n in range(25)])
    total = 7 + 25
    seen: list[str] = []
    for start in range(1, total + 1, 10):
        page = await scim.found("Users", startIndex=str(start), count="10")
        assert page["totalResults"] == total and page["startIndex"] == start
        assert page["itemsPerPage"] == len(page["Resources"]) == min(10, total - start + 1)
        seen += [u["userName"] for u in page["Resources"]]
    assert len(seen) == len(set(seen)) == total
    again = await scim.found("Users", count=str(total))
    assert [u["userName"] for u in again["Resources"]] == seen  # one order, page after page
    only = await scim.found("Users", count="0")
    assert only["totalResults"] == total and only.get("Resources", []) == []
    past = await scim.found("Users", startIndex="100")
    assert past["totalResults"] == total and past.get("Resources", []) == []
    assert (await scim.found("Users", count="1000"))["itemsPerPage"] == total  # under maxResults
    filtered = await scim.found("Users", filter='userName sw "p01"', count="4", startIndex="9")
    assert filtered["totalResults"] == 10 and len(filtered["Resources"]) == 2


async def test_pages_by_cursor_neither_repeat_nor_miss(scim: Reader, db: Database) -> None:
    await add_members(db, [{"user_name": f"p{n:03d}", "name": f"P{n}"} for n in range(25)])
    first = await scim.found("Users", cursor="", count="10")
    assert first["totalResults"] == 32 and "startIndex" not in first
    pages, page = [first], first
    while "nextCursor" in page:
        page = await scim.found("Users", cursor=page["nextCursor"], count="10")
        pages.append(page)
    names = [u["userName"] for p in pages for u in p["Resources"]]
    assert [len(p["Resources"]) for p in pages] == [10, 10, 10, 2]
    assert len(names) == len(set(names)) == 32
    back = await scim.found("Users", cursor=pages[2]["previousCursor"], count="10")
    assert back["Resources"] == pages[1]["Resources"]
    assert "previousCursor" not in first
    other = await scim.get("Users", cursor=pages[1]["nextCursor"], count="5")
    assert other.status_code == 400  # a cursor serves the query and count it was issued for
    forged = await scim.get("Users", cursor="AAAA", count="10")
    assert forged.status_code == 400 and forged.json()["scimType"] == "invalidCursor"


async def test_a_large_department_lists_its_first_members_and_says_so(
    scim: Reader, db: Database
) -> None:
    cap = resources.MEMBERS_CAP
    crowd = [{"user_name": f"m{n:04d}", "name": f"M{n}", "org_code": "D3"} for n in range(cap + 5)]
    await add_members(db, crowd)
    ops = resources.group_id("D3")
    group = await scim.found(f"Groups/{ops}")
    assert len(group["members"]) == cap
    assert group["members"][0]["value"] == uid("m0000")
    assert group[resources.GROUP_SCHEMA]["membersTruncated"] is True
    everyone = await scim.found("Users", filter=f'groups.value eq "{ops}"', count="0")
    assert everyone["totalResults"] == cap + 5
    bounded = await scim.found("Users", count="500")  # maxResults: 200 a page at most
    assert bounded["itemsPerPage"] == 200 and bounded["totalResults"] == cap + 5 + 7
    small = await scim.found(f"Groups/{resources.group_id('D1')}")
    assert "membersTruncated" not in small[resources.GROUP_SCHEMA]


def test_time_values_are_compared_in_utc() -> None:
    """A filter's dateTime with an offset is the same instant in the naive UTC columns."""
    from identity.scim.filters import _naive

    east = datetime.fromisoformat("2026-12-01T17:00:00+08:00")
    assert _naive(east, "meta.lastModified") == datetime(2026, 12, 1, 9, 0, 0)
