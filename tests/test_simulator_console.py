"""The buyer's console (identity/simulator/console) against a real identity: the simulator and
identity run as processes (`running_stack`), the console is used over HTTP as a browser without
script would, and each action is judged by what identity then holds and by who can sign in.

The console's world lives in the simulator process for the whole module, so each test works in
an enterprise of its own (the buyer may hold 5); identity's tables are read, never emptied."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from identity.db import Database
from identity.models import (
    ACTIVE,
    CANCELLED,
    DELETED,
    AppCredential,
    Authorisation,
    Department,
    Member,
    Tenant,
)
from tests.helpers.kit_bodies import count, one, rows
from tests.helpers.simulator_world import BUYER, Console, calls, console_world, shown
from tests.helpers.stack import Browser, Browsers, Stack, assert_refused, running_stack

DELIVERED = "000000", "delivered"
NEW_PASSWORD = "Fresh-pass-2027"


@pytest.fixture(scope="module")
def outbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The development sender's file, shared by identity and the simulator."""
    return tmp_path_factory.mktemp("notify") / "messages.jsonl"


@pytest.fixture(scope="module")
async def stack(database_url: str, private_key_file: Path, outbox: Path) -> AsyncIterator[Stack]:
    env = {"IDENTITY_NOTIFY_FILE": str(outbox)}
    async with running_stack(
        database_url, private_key_file, console_world(), identity_env=env
    ) as running:
        yield running


@pytest.fixture(scope="module")
async def held(database_url: str) -> AsyncIterator[Database]:
    """identity's tables as they are (the `db` fixture would empty them)."""
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
async def console(stack: Stack) -> AsyncIterator[Console]:
    signed_in = Console(stack.sim)
    page = await signed_in.sign_in()
    assert page.url.path == "/console", page.text
    yield signed_in
    await signed_in.close()


def messages(outbox: Path, to: str) -> list[dict[str, Any]]:
    lines = outbox.read_text("utf-8").splitlines() if outbox.exists() else []
    return [m for m in map(json.loads, lines) if m["to"] == to]


async def bound(console: Console, code: str, name: str) -> str:
    """A new enterprise, bound to the app; its tenantId at identity."""
    created = await console.post("/console/enterprises", name=name, code=code)
    assert created.url.path == f"/console/enterprises/{code}", shown(created, "error")
    page = await console.post(f"/console/enterprises/{code}/bind")
    assert [c[1:] for c in calls(page)] == [DELIVERED] * 4, page.text
    return str(page.text.split("tenantId <code>")[1].split("<")[0])


async def first_sign_in(browser: Browser, code: str, account: str, initial: str) -> httpx.Response:
    """Flow B with the initial password, the new one set on the auth centre's change form."""
    form = await browser.flow_b(code, account, initial)
    assert "change-password" in form.text, form.text
    ticket = form.text.split('name="ticket" value="')[1].split('"')[0]
    fields = {"ticket": ticket, "new_password": NEW_PASSWORD, "again": NEW_PASSWORD}
    return await browser.post(str(form.url.join("/api/v1/login/change-password")), data=fields)


# --- who may use it -----------------------------------------------------------------------------


async def test_only_the_signed_in_buyer_with_the_page_token_changes_anything(
    stack: Stack,
) -> None:
    stranger = Console(stack.sim)
    try:
        page = await stranger.get("/console")
        assert page.url.path == "/console/sign-in"
        wrong = await stranger.sign_in(password="not-it")
        assert wrong.status_code == 401 and "Wrong account or password" in shown(wrong, "error")
        signed_in = await stranger.sign_in()
        assert signed_in.url.path == "/console" and BUYER["name"] in signed_in.text
        forged = await stranger.http.post(
            "/console/enterprises", data={"name": "Forged", "code": "forged", "csrf": "x"}
        )
        assert forged.status_code == 403 and "form expired" in forged.text
        assert "forged" not in (await stranger.get("/console")).text
        out = await stranger.post("/console/sign-out")
        assert out.url.path == "/console/sign-in"
        assert (await stranger.get("/console")).url.path == "/console/sign-in"
    finally:
        await stranger.close()


# --- enterprises and departments ----------------------------------------------------------------


async def test_an_enterprise_and_its_departments_reach_identity_as_syncs(
    stack: Stack, console: Console, held: Database
) -> None:
    created = await console.post("/console/enterprises", name="Cedar 雪松", code="cedar")
    assert shown(created, "bound") == "未绑定 / not bound"
    assert await count(held, Tenant, Tenant.tenant_code == "cedar") == 0  # nothing sent yet
    again = await console.post("/console/enterprises", name="Other", code="cedar")
    assert again.status_code == 422 and "企业标识 cedar 已被使用" in shown(again, "error")

    bound_page = await console.post("/console/enterprises/cedar/bind")
    interfaces = ["newInstance", "tenantSync", "applicationSync", "allOrgSync"]
    assert calls(bound_page) == [(i, *DELIVERED) for i in interfaces]
    tenant = await one(held, Tenant, Tenant.tenant_code == "cedar")
    assert (tenant.name, tenant.state, tenant.domain_name) == ("Cedar 雪松", ACTIVE, stack.sim)
    credential = await one(held, AppCredential, AppCredential.tenant_id == tenant.tenant_id)
    assert credential.state == ACTIVE and credential.app_id == stack.scenario.app_id
    top = await one(held, Department, Department.tenant_id == tenant.tenant_id)
    assert (top.org_code, top.name, top.parent_code) == ("cedar", "Cedar 雪松", "")

    base = "/console/enterprises/cedar/departments"
    for code, name in (("cedar-rd", "研发部"), ("cedar-ops", "运维部")):
        page = await console.post(base, org_code=code, org_name=name, parent_code="cedar")
        assert calls(page) == [("singleOrgSync", *DELIVERED)]
    twin = await console.post(base, org_code="cedar-x", org_name="研发部", parent_code="cedar")
    assert twin.status_code == 422 and "同一上级部门下已有名为 研发部 的部门" in shown(
        twin, "error"
    )
    await console.post(f"{base}/rename", org_code="cedar-ops", org_name="运维 Ops")
    moved = await console.post(f"{base}/move", org_code="cedar-ops", parent_code="cedar-rd")
    assert calls(moved) == [("singleOrgSync", *DELIVERED)]
    loop = await console.post(f"{base}/move", org_code="cedar-rd", parent_code="cedar-ops")
    assert loop.status_code == 422 and "cycle" in shown(loop, "error")
    full = await console.post(f"{base}/delete", org_code="cedar-rd")
    assert full.status_code == 422 and "sub-departments" in shown(full, "error")

    departments = await rows(held, Department, Department.tenant_id == tenant.tenant_id)
    by_code = {d.org_code: (d.name, d.parent_code, d.state) for d in departments}
    assert by_code == {
        "cedar": ("Cedar 雪松", "", ACTIVE),
        "cedar-rd": ("研发部", "cedar", ACTIVE),
        "cedar-ops": ("运维 Ops", "cedar-rd", ACTIVE),  # renamed, then moved: not a cycle
    }

    refused = await console.post("/console/enterprises/cedar/dissolve")
    assert refused.status_code == 422 and "department" in shown(refused, "error")
    for code in ("cedar-ops", "cedar-rd", "cedar"):
        page = await console.post(f"{base}/delete", org_code=code)
        assert calls(page) == [("singleOrgSync", *DELIVERED)], shown(page, "error")
    gone = await one(held, Department, Department.org_code == "cedar-ops")
    assert gone.state == DELETED
    dissolved = await console.post("/console/enterprises/cedar/dissolve")
    assert dissolved.url.path == "/console" and calls(dissolved) == [("tenantSync", *DELIVERED)]
    assert (await one(held, Tenant, Tenant.tenant_code == "cedar")).state == DELETED
    assert "cedar" not in shown(dissolved, "enterprises")


# --- members ------------------------------------------------------------------------------------


async def test_a_member_added_in_the_console_signs_in_once_the_app_is_authorised(
    stack: Stack, console: Console, held: Database, browsers: Browsers, outbox: Path
) -> None:
    tenant_id = await bound(console, "dune", "Dune 沙丘")
    added = await console.post(
        "/console/enterprises/dune/members",
        account="kim", name="Kim 金", department="dune", mobile="+8613700000011",
    )  # fmt: skip
    assert calls(added) == []  # the app is not authorised to kim: the ISV hears nothing
    assert "+86137****0011" in shown(added, "result-text")
    sent = messages(outbox, "+8613700000011")
    assert [m["kind"] for m in sent] == ["initial_password"] and "kim@dune" in sent[0]["text"]
    initial = sent[0]["secret"]
    assert initial not in added.text
    twice = await console.post(
        "/console/enterprises/dune/members",
        account="kim", name="Kim", department="dune", mobile="+8613700000012",
    )  # fmt: skip
    assert twice.status_code == 422 and "kim@dune 已存在" in shown(twice, "error")
    assert messages(outbox, "+8613700000012") == []  # refused before anything was sent

    # The auth centre signs kim in at once, after a new password; identity never heard of her.
    browser = browsers()
    form = await browser.flow_b("dune", "kim@dune", initial)
    ticket = form.text.split('name="ticket" value="')[1].split('"')[0]
    change = str(form.url.join("/api/v1/login/change-password"))
    weak = await browser.post(change, data={"ticket": ticket, "new_password": "short", "again": ""})
    assert weak.status_code == 422 and "At least 8 characters" in weak.text
    fields = {"ticket": ticket, "new_password": NEW_PASSWORD, "again": NEW_PASSWORD}
    assert_refused(await browser.post(change, data=fields), "member_unknown")

    authorised = await console.post("/console/enterprises/dune/members/kim/authorise")
    assert calls(authorised) == [("authSync", *DELIVERED)]
    key = (Authorisation.tenant_id == tenant_id, Authorisation.user_name == "kim")
    grant = await one(held, Authorisation, *key)
    assert (grant.state, grant.enabled, grant.role) == (ACTIVE, True, "user")
    landed = await browsers().flow_b("dune", "kim@dune", NEW_PASSWORD)  # no change form now
    assert landed.url.path == "/sso/me", landed.text

    await console.post("/console/enterprises/dune/members/kim/admin")
    assert (await one(held, Authorisation, *key)).role == "admin"
    enabled = await console.post("/console/enterprises/dune/members/kim/delete")
    assert enabled.status_code == 422 and "Only a disabled member" in shown(enabled, "error")
    await console.post("/console/enterprises/dune/members/kim/disable")
    assert (await one(held, Authorisation, *key)).enabled is False
    assert_refused(await browsers().flow_b("dune", "kim@dune", NEW_PASSWORD), "member_disabled")
    await console.post("/console/enterprises/dune/members/kim/enable")
    await console.post("/console/enterprises/dune/members/kim/user")
    grant = await one(held, Authorisation, *key)
    assert (grant.enabled, grant.role) == (True, "user")
    cancelled = await console.post("/console/enterprises/dune/members/kim/cancel")
    assert calls(cancelled) == [("authSync", *DELIVERED)]
    grant = await one(held, Authorisation, *key)
    assert (grant.state, grant.enabled) == (CANCELLED, True)
    assert_refused(
        await browsers().flow_b("dune", "kim@dune", NEW_PASSWORD), "authorisation_cancelled"
    )

    await console.post("/console/enterprises/dune/members/kim/disable")  # nothing sent: cancelled
    deleted = await console.post("/console/enterprises/dune/members/kim/delete")
    assert calls(deleted) == [("authSync", *DELIVERED)]
    member = await one(held, Member, Member.tenant_id == tenant_id, Member.user_name == "kim")
    assert member.state == DELETED
    gone = await browsers().flow_b("dune", "kim@dune", NEW_PASSWORD)
    assert gone.status_code == 401 and "Wrong account or password" in gone.text


async def test_an_import_adds_the_good_rows_and_says_why_the_others_failed(
    stack: Stack, console: Console, held: Database, outbox: Path
) -> None:
    tenant_id = await bound(console, "elm", "Elm 榆树")
    await console.post(
        "/console/enterprises/elm/departments",
        org_code="elm-sales", org_name="销售部", parent_code="elm",
    )  # fmt: skip
    csv = (
        "\ufeffaccount,name,department,mobile\n"
        "ann,Ann,elm-sales,+8613700000021\n"
        "ben,Ben 本,销售部,+8613700000022\n"  # the department by its name
        "ann,Ann again,elm,+8613700000023\n"
        "cat,Cat,nowhere,+8613700000024\n"
        "dan,Dan,elm,12ab\n"
    ).encode()
    page = await console.upload("/console/enterprises/elm/members/import", csv)
    assert "2 added, 3 failed" in shown(page, "result-text")
    results = shown(page, "import-results")
    for expected in (
        "2 ann 已添加 / added",
        "3 ben 已添加 / added",
        "4 ann 账号 ann@elm 已存在",
        "5 cat 部门 nowhere 不存在 / There is no department nowhere",
        "6 dan 手机号须为 5-20 位数字",
    ):
        assert expected in results, results
    for mobile, sent in (("21", 1), ("22", 1), ("23", 0), ("24", 0), ("25", 0)):
        assert len(messages(outbox, f"+86137000000{mobile}")) == sent
    listed = shown(await console.get("/console/enterprises/elm"), "member-list")
    assert "ann@elm" in listed and "ben@elm" in listed and "cat@elm" not in listed

    bad = await console.upload("/console/enterprises/elm/members/import", b"name,mobile\nx,1\n")
    assert bad.status_code == 422 and "account, department" in shown(bad, "error")

    everyone = await console.post(
        "/console/enterprises/elm/authorise", org_code="elm", op="authorise"
    )
    assert calls(everyone) == [("authSync", *DELIVERED)]
    grants = await rows(held, Authorisation, Authorisation.tenant_id == tenant_id)
    assert {(g.user_name, g.state) for g in grants} == {("ann", ACTIVE), ("ben", ACTIVE)}
    await console.post("/console/enterprises/elm/authorise", org_code="elm-sales", op="cancel")
    grants = await rows(held, Authorisation, Authorisation.tenant_id == tenant_id)
    assert {(g.user_name, g.state) for g in grants} == {("ann", CANCELLED), ("ben", CANCELLED)}
    nobody = await console.post("/console/enterprises/elm/authorise", org_code="elm", op="cancel")
    assert nobody.status_code == 422 and "Nobody is authorised" in shown(nobody, "error")


async def test_a_reset_needs_the_code_sent_to_the_buyer_and_the_member_changes_it_at_sign_in(
    stack: Stack, console: Console, browsers: Browsers, outbox: Path
) -> None:
    await bound(console, "fir", "Fir 冷杉")
    await console.post(
        "/console/enterprises/fir/members",
        account="lee", name="Lee", department="fir", mobile="+8613700000031",
    )  # fmt: skip
    await console.post("/console/enterprises/fir/members/lee/authorise")
    initial = messages(outbox, "+8613700000031")[-1]["secret"]
    assert (await first_sign_in(browsers(), "fir", "lee@fir", initial)).url.path == "/sso/me"

    reset = "/console/enterprises/fir/members/lee/reset"
    weak = await console.post(reset, new_password="lee", again="lee")
    assert weak.status_code == 422 and "At least 8 characters" in shown(weak, "error")
    codes_before = len(messages(outbox, BUYER["mobile"]))
    typed = "Typed-by-admin-1"
    asked = await console.post(reset, new_password=typed, again=typed)
    assert shown(asked, "sent-to") == "+86139****0009"
    sent = messages(outbox, BUYER["mobile"])
    assert len(sent) == codes_before + 1 and sent[-1]["kind"] == "reset_code"
    reset_id = asked.text.split('name="reset_id" value="')[1].split('"')[0]
    wrong = "000000" if sent[-1]["secret"] != "000000" else "111111"
    missed = await console.post(f"{reset}/confirm", reset_id=reset_id, code=wrong)
    assert missed.status_code == 422 and "4 tries left" in shown(missed, "error")
    done = await console.post(f"{reset}/confirm", reset_id=reset_id, code=sent[-1]["secret"])
    assert "lee@fir" in shown(done, "result-text") and typed not in done.text

    old = await browsers().flow_b("fir", "lee@fir", NEW_PASSWORD)
    assert old.status_code == 401
    changed = await first_sign_in(browsers(), "fir", "lee@fir", typed)
    assert changed.url.path == "/sso/me"
    soon = await console.post(reset, new_password=typed, again=typed)
    assert soon.status_code == 422 and "Next allowed in 1" in shown(soon, "error")
