"""singleOrgSync and allOrgSync (contract §3.4, §3.5)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from identity.db import Database
from identity.errors import InvalidParameter
from identity.marketplace.schemas import JSON5_MAX_CHARS, AllOrgSync, parse
from identity.models import Department
from tests.helpers.kit_bodies import (
    INVALID,
    all_org_body,
    count,
    kit_ok,
    org,
    org_body,
    rows,
    stamp,
)
from tests.helpers.marketplace_client import SignedCalls

Tree = dict[str, tuple[str, str, str]]


async def tree(db: Database) -> Tree:
    """orgCode -> (name, parentCode, state), deleted departments included."""
    return {d.org_code: (d.name, d.parent_code, d.state) for d in await rows(db, Department)}


async def single(marketplace: SignedCalls, org_code: str, **overrides: Any) -> None:
    await kit_ok(marketplace, "singleOrgSync", org_body(org_code, **overrides))


async def full(marketplace: SignedCalls, org_list: Any, **overrides: Any) -> None:
    await kit_ok(marketplace, "allOrgSync", all_org_body(org_list, **overrides))


# --- singleOrgSync -------------------------------------------------------------------------


async def test_add_rename_move_delete(marketplace: SignedCalls, db: Database) -> None:
    await single(marketplace, "D1", orgName="Dev")
    await single(marketplace, "D2", orgName="Ops")
    await single(marketplace, "D3", orgName="QA", parentCode="D1")
    assert (await tree(db))["D3"] == ("QA", "D1", "active")
    await single(marketplace, "D3", orgName="Quality", parentCode="D1", flag=2, timeStamp=stamp(2))
    assert (await tree(db))["D3"] == ("Quality", "D1", "active")
    await single(marketplace, "D3", orgName="Quality", parentCode="D2", flag=2, timeStamp=stamp(3))
    assert (await tree(db))["D3"] == ("Quality", "D2", "active")
    await single(marketplace, "D3", orgName="Quality", flag=0, timeStamp=stamp(4))
    assert (await tree(db))["D3"][2] == "deleted"
    assert (await tree(db))["D1"] == ("Dev", "", "active")


async def test_repeated_add_and_delete_succeed(marketplace: SignedCalls, db: Database) -> None:
    for _ in range(2):
        await single(marketplace, "D1")
    assert await count(db, Department) == 1
    for n in (2, 3):
        await single(marketplace, "D1", flag=0, timeStamp=stamp(n))
    await single(marketplace, "NEVER-SEEN", flag=0)
    assert await count(db, Department, Department.state == "active") == 0


async def test_an_older_change_after_a_newer_one_is_ignored(
    marketplace: SignedCalls, db: Database
) -> None:
    await single(marketplace, "D1", orgName="New", timeStamp=stamp(5))
    await single(marketplace, "D1", orgName="Old", flag=2, timeStamp=stamp(4))
    await single(marketplace, "D1", flag=0, timeStamp=stamp(3))
    assert (await tree(db))["D1"] == ("New", "", "active")


async def test_a_missing_parent_code_means_top_level(
    marketplace: SignedCalls, db: Database
) -> None:
    body = org_body("D1")
    del body["parentCode"]
    await kit_ok(marketplace, "singleOrgSync", body)
    assert (await tree(db))["D1"][1] == ""


# --- allOrgSync ----------------------------------------------------------------------------

CHILD_FIRST = [org("D11", "D1", "Backend"), org("D1", "", "Dev"), org("D2", "", "Ops")]
EXPECTED: Tree = {
    "D1": ("Dev", "", "active"),
    "D11": ("Backend", "D1", "active"),
    "D2": ("Ops", "", "active"),
}
UNQUOTED = (
    '[{orgCode:"D11", orgName:"Backend", parentCode:"D1" },'
    '{orgCode:"D1", orgName:"Dev", parentCode:"" },{orgCode:"D2", orgName:"Ops"}]'
)


def renamed(key: str) -> list[dict[str, str]]:
    return [{(key if k == "orgName" else k): v for k, v in o.items()} for o in CHILD_FIRST]


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"orgInfoList": CHILD_FIRST}, id="array"),
        pytest.param({"orgInfoList": json.dumps(CHILD_FIRST)}, id="json-string"),
        pytest.param({"orgInfoList": UNQUOTED}, id="unquoted-keys"),
        pytest.param({"orgInfoList": renamed("OrgName")}, id="OrgName"),
        pytest.param({"orgInfo": json.dumps(renamed("name"))}, id="v1-orgInfo-name"),
    ],
)
async def test_every_documented_shape_is_accepted(
    marketplace: SignedCalls, db: Database, fields: dict[str, Any]
) -> None:
    body = all_org_body([], flag=1, **fields)  # the doc example's stray flag is ignored
    if "orgInfo" in fields:
        del body["orgInfoList"]
    await kit_ok(marketplace, "allOrgSync", body)
    assert await tree(db) == EXPECTED


async def test_a_full_sync_replaces_the_tree(marketplace: SignedCalls, db: Database) -> None:
    await full(marketplace, [org("D1"), org("D2"), org("D3", "D2")])
    await full(marketplace, [org("D1", name="Renamed"), org("D4", "D1")], timeStamp=stamp(2))
    assert await tree(db) == {
        "D1": ("Renamed", "", "active"),
        "D2": ("Dept D2", "", "deleted"),
        "D3": ("Dept D3", "D2", "deleted"),
        "D4": ("Dept D4", "D1", "active"),
    }
    await full(marketplace, [org("D1", name="Renamed"), org("D4", "D1")], timeStamp=stamp(3))
    assert await count(db, Department) == 4  # repeating it creates nothing new


async def test_a_full_sync_revives_a_deleted_department(
    marketplace: SignedCalls, db: Database
) -> None:
    await single(marketplace, "D1", flag=0)
    await full(marketplace, [org("D1")], timeStamp=stamp(2))
    assert (await tree(db))["D1"][2] == "active"


async def test_a_full_sync_touches_only_its_own_tenant(
    marketplace: SignedCalls, db: Database
) -> None:
    await single(marketplace, "X1", tenantId="OTHER")
    await full(marketplace, [org("D1")], timeStamp=stamp(2))
    assert await count(db, Department, Department.state == "active") == 2


async def test_the_doc_example_with_a_duplicated_key_is_accepted(
    marketplace: SignedCalls, db: Database
) -> None:
    """§3.4's example repeats `instanceId`; the last value wins, as in Jackson (the first one
    here is over-long, so a parser keeping it would answer 000002)."""
    raw = (
        '{"instanceId":"' + "x" * 65 + '","instanceId":"","tenantId":"T1","orgCode":"10000",'
        '"orgName":"开发部","parentCode":"","flag":1,"testFlag":0,"timeStamp":"20220413093539534"}'
    ).encode()
    answer = await marketplace.kit("singleOrgSync", raw)  # signed over the canonical form
    assert answer["resultCode"] == "000000", answer
    assert (await tree(db))["10000"] == ("开发部", "", "active")


TRICKY = 'R&D ,x: 1 {y: "quoted", z:[w: 2]} \\ end'
"""A name that looks like relaxed-JSON keys, with escaped quotes and a backslash."""


def relaxed(departments: list[dict[str, str]]) -> str:
    """The §3.5 doc example's shape: unquoted keys, JSON string values."""
    return (
        "["
        + ",".join(
            "{" + ", ".join(f"{k}:{json.dumps(v, ensure_ascii=False)}" for k, v in d.items()) + " }"
            for d in departments
        )
        + "]"
    )


async def test_a_large_relaxed_org_list_keeps_names_intact(
    marketplace: SignedCalls, db: Database
) -> None:
    departments = [org(f"D{i:04d}", "D0000" if i else "") for i in range(2_999)]
    departments.append(org("TRICKY", "D0001", TRICKY))
    org_list = relaxed(departments)
    assert ",x:" in org_list and "{y:" in org_list and '\\"quoted\\"' in org_list
    await full(marketplace, org_list)
    stored = await tree(db)
    assert len(stored) == 3_000
    assert stored["TRICKY"] == (TRICKY, "D0001", "active")
    assert stored["D2998"] == ("Dept D2998", "D0000", "active")


def single_quoted(departments: list[dict[str, str]]) -> str:
    """A JSON5 form that is neither JSON nor JSON with unquoted keys: single-quoted values."""
    return (
        "["
        + ",".join(
            "{" + ",".join(f"{k}:'{v}'" for k, v in d.items()) + ",}"  # trailing comma too
            for d in departments
        )
        + "]"
    )


async def test_other_relaxed_forms_are_parsed_when_small(
    marketplace: SignedCalls, db: Database
) -> None:
    org_list = single_quoted(CHILD_FIRST)
    assert len(org_list) <= JSON5_MAX_CHARS
    await full(marketplace, org_list)
    assert await tree(db) == EXPECTED


async def test_other_relaxed_forms_are_refused_when_large(
    marketplace: SignedCalls, db: Database
) -> None:
    """The pure-Python JSON5 parser would hold the event loop for seconds on a large list."""
    org_list = single_quoted([org(f"D{i:04d}") for i in range(3_000)])
    answer = await marketplace.kit("allOrgSync", all_org_body(org_list))
    assert answer["resultCode"] == INVALID, answer
    assert "orgInfoList" in answer["resultMsg"]
    assert str(JSON5_MAX_CHARS) in answer["resultMsg"]
    assert await count(db, Department) == 0


ADVERSARIAL = [
    pytest.param('[{orgCode:"' + '\\"' * 50_000, id="unterminated-string-of-escaped-quotes"),
    pytest.param(
        "[{" + "a:1," * 250_000 + 'orgCode:"D1",orgName:"Dev"}]', id="a-MiB-of-unquoted-keys"
    ),
    pytest.param("[{a:" * 250_000, id="a-MiB-of-nesting"),
    pytest.param("[" + ",".join(["'x'"] * 50_000) + "]", id="200KB-of-JSON5"),
    pytest.param(("[" + "1," * JSON5_MAX_CHARS)[:JSON5_MAX_CHARS], id="JSON5-at-the-limit"),
]


@pytest.mark.parametrize("org_list", ADVERSARIAL)
def test_hostile_org_lists_are_parsed_or_refused_quickly(org_list: str) -> None:
    """Parsing runs on the event loop: its cost must stay linear (each of these took seconds
    with a backtracking bare-key regex or an unbounded JSON5 fallback). The CPU time of this
    thread, not the wall clock: the suite's other workers share the cores."""
    started = time.thread_time()
    try:
        parse(AllOrgSync, all_org_body(org_list))
    except InvalidParameter as exc:
        assert "orgInfoList" in str(exc)
    assert time.thread_time() - started < 0.5
