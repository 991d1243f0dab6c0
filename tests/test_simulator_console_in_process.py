"""The buyer's console served in this process (real HTTP, the auth centre's clock in the test's
hands): syncs the ISV did not get and sent again once it is back (an older change never undoing
a newer one), the password-reset limits (two requests at once included), the limit of 5
enterprises, what the forms and the import refuse, the sign-in's protections and the pages'
headers, that the console answers this machine only, and the auth centre's CAS login with a
password that must change."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from identity.db import Database
from identity.models import Authorisation, Department, Tenant
from identity.notify import Message
from identity.simulator.authcentre import create_auth_centre
from identity.simulator.console.passwords import Messages
from identity.simulator.console.state import Console as ConsoleState
from identity.simulator.console.state import ConsoleSetup
from identity.simulator.scenario import ScenarioError, World, load_scenario
from identity.simulator.wire import Keys
from tests.helpers.clock import Clock
from tests.helpers.kit_bodies import one, rows
from tests.helpers.marketplace_client import BASIC_KEY, KIT_KEY, SECRET_KEY
from tests.helpers.servers import ServiceProcesses, free_port, service_env, serving_here
from tests.helpers.simulator_world import (
    BUYER,
    Console,
    calls,
    console_world,
    shown,
    world_data,
)


@pytest.fixture
async def served(
    private_key_file: Path, tmp_path: Path, clock: Clock
) -> AsyncIterator[tuple[str, str, ConsoleState]]:
    """(identity's address, not served yet; the auth centre's; the console's state)."""
    identity = f"http://127.0.0.1:{free_port()}"
    keys = Keys.from_private_key_pem(BASIC_KEY, KIT_KEY, private_key_file.read_bytes())
    setup = ConsoleSetup(identity, "", keys, tmp_path / "messages.jsonl")
    app = create_auth_centre(
        World(console_world()), callback_base=identity, clock=clock, console=setup
    )
    async with serving_here(app) as sim:
        state: ConsoleState = app.state.console
        state.setup = dataclasses.replace(setup, auth_centre=sim)  # known once it serves
        yield identity, sim, state


@pytest.fixture
async def console(served: tuple[str, str, ConsoleState]) -> AsyncIterator[Console]:
    signed_in = Console(served[1])
    await signed_in.sign_in()
    yield signed_in
    await signed_in.close()


async def with_member(console: Console, code: str, account: str, mobile: str) -> None:
    """A new enterprise `code` with one member, in its top department."""
    await console.post("/console/enterprises", name=code.title(), code=code)
    await console.post(
        f"/console/enterprises/{code}/members",
        account=account, name=account.title(), department=code, mobile=mobile,
    )  # fmt: skip


def number_of(page: httpx.Response) -> int:
    found = re.search(r'id="result".*?id="delivery-(\d+)"', page.text, re.S)
    assert found, page.text
    return int(found.group(1))


async def test_syncs_the_isv_did_not_get_stay_listed_and_go_again_once_it_is_back(
    served: tuple[str, str, ConsoleState],
    console: Console,
    database_url: str,
    private_key_file: Path,
) -> None:
    identity, _sim, state = served
    await console.post("/console/enterprises", name="Gum 桉树", code="gum")
    bound = await console.post("/console/enterprises/gum/bind")
    assert calls(bound) == [
        ("newInstance", "—", "failed"),
        ("tenantSync", "—", "waiting"),
        ("applicationSync", "—", "waiting"),
        ("allOrgSync", "—", "waiting"),
    ]
    assert "identity is unreachable" in shown(bound, "result")
    assert "The ISV did not get every sync" in shown(bound, "not-delivered")
    assert shown(bound, "bound") == "已绑定 / bound"  # the change stays made
    binding = number_of(bound)
    added = await console.post(
        "/console/enterprises/gum/departments", org_code="gum-hr", org_name="人事部",
        parent_code="gum",
    )  # fmt: skip
    assert calls(added) == [("singleOrgSync", "—", "failed")]
    department = number_of(added)
    await console.post(
        "/console/enterprises/gum/members",
        account="ned", name="Ned", department="gum", mobile="+8613700000071",
    )  # fmt: skip
    member = "/console/enterprises/gum/members/ned"
    authorised = number_of(await console.post(f"{member}/authorise"))
    disabled = number_of(await console.post(f"{member}/disable"))
    enabled = number_of(await console.post(f"{member}/enable"))  # the newest change
    waiting = shown(await console.get("/console"), "undelivered")
    assert "App bound" in waiting and "人事部 created" in waiting

    env = service_env(
        database_url, secret_key=SECRET_KEY, basic_key=BASIC_KEY, kit_key=KIT_KEY,
        base_url=identity,
    )  # fmt: skip
    env["IDENTITY_MARKETPLACE_PRIVATE_KEY_FILE"] = str(private_key_file)
    keys = state.setup.keys
    state.setup = dataclasses.replace(state.setup, keys=dataclasses.replace(keys, kit="k" * 20))
    with ServiceProcesses(1, env, ports=[int(identity.rsplit(":", 1)[1])]):
        # Back, but the console signs kit calls with a key identity does not hold.
        again = await console.post(f"/console/deliveries/{binding}/again", back="gum")
        assert again.url.path == "/console/enterprises/gum"
        assert calls(again) == [
            ("newInstance", "000000", "delivered"),
            ("tenantSync", "000001", "refused"),
            ("applicationSync", "—", "waiting"),
            ("allOrgSync", "—", "waiting"),
        ]
        assert "被拒绝 / refused" in shown(again, "result")
        state.setup = dataclasses.replace(state.setup, keys=keys)
        again = await console.post(f"/console/deliveries/{binding}/again", back="gum")
        assert [c[1:] for c in calls(again)] == [("000000", "delivered")] * 4
        again = await console.post(f"/console/deliveries/{department}/again", back="gum")
        assert calls(again) == [("singleOrgSync", "000000", "delivered")]
        for number in (authorised, enabled, disabled):  # the older change sent last
            again = await console.post(f"/console/deliveries/{number}/again", back="gum")
            assert calls(again) == [("authSync", "000000", "delivered")]
        assert "undelivered" not in (await console.get("/console")).text
        done = await console.post(f"/console/deliveries/{department}/again", back="gum")
        assert "already went through" in shown(done, "result-text")

    db = Database(database_url)
    try:
        tenant = await one(db, Tenant, Tenant.tenant_code == "gum")
        held = await rows(db, Department, Department.tenant_id == tenant.tenant_id)
        assert {(d.org_code, d.name) for d in held} == {("gum", "Gum 桉树"), ("gum-hr", "人事部")}
        key = (Authorisation.tenant_id == tenant.tenant_id, Authorisation.user_name == "ned")
        assert (await one(db, Authorisation, *key)).enabled is True  # as the console left ned
    finally:
        await db.dispose()


async def test_resets_of_one_member_are_limited_and_the_page_says_when_the_next_is_allowed(
    console: Console, clock: Clock
) -> None:
    await console.post("/console/enterprises", name="Hazel", code="hazel")
    members = (("ivy", "+8613700000041"), ("joe", "+8613700000042"), ("kai", "+8613700000043"))
    for account, mobile in members:
        await console.post(
            "/console/enterprises/hazel/members",
            account=account, name=account, department="hazel", mobile=mobile,
        )  # fmt: skip

    async def reset(account: str) -> httpx.Response:
        typed = f"New-pass-{clock.now:.0f}"
        path = f"/console/enterprises/hazel/members/{account}/reset"
        return await console.post(path, new_password=typed, again=typed)

    assert shown(await reset("ivy"), "sent-to")
    clock.advance(100)
    held = await reset("ivy")
    assert "Next allowed in 80 s (at most 1 reset in 3 minutes for this member)" in shown(
        held, "error"
    )
    assert shown(await reset("joe"), "sent-to")  # counted per member
    for _ in range(14):  # 15 in the hour, one every 3 minutes
        clock.advance(180)
        assert shown(await reset("ivy"), "sent-to")
    clock.advance(180)
    hour = shown(await reset("ivy"), "error")
    assert "at most 15 resets an hour" in hour and "Next allowed in 800 s" in hour, hour
    for _ in range(60):  # one every 4 minutes: 15 an hour, 60 in 4 hours
        assert shown(await reset("kai"), "sent-to"), "refused early"
        clock.advance(240)
    day = shown(await reset("kai"), "error")
    assert "at most 60 resets a day" in day and "Next allowed in 72000 s" in day, day


async def test_the_buyer_holds_at_most_five_enterprises_with_well_formed_codes(
    console: Console,
) -> None:
    for problem, code in (
        ("lower-case letters, digits or hyphens", "Big"),
        ("lower-case letters, digits or hyphens", "-x"),
        ("The enterprise code is required", ""),
    ):
        page = await console.post("/console/enterprises", name="X", code=code)
        assert page.status_code == 422 and problem in shown(page, "error"), shown(page, "error")
        assert f'value="{code}"' in page.text  # what was typed is kept
    for n in range(5):
        created = await console.post("/console/enterprises", name=f"E{n}", code=f"e{n}")
        assert created.status_code == 200, shown(created, "error")
    sixth = await console.post("/console/enterprises", name="E5", code="e5")
    assert sixth.status_code == 422
    assert "一个管理员最多管理 5 个企业" in shown(sixth, "error")
    assert "5 / 5" in sixth.text


async def test_the_console_answers_this_machine_only_unless_told_otherwise(
    served: tuple[str, str, ConsoleState],
) -> None:
    _identity, _sim, state = served
    app = create_auth_centre(
        console_world(), callback_base="http://127.0.0.1:9", console=state.setup
    )
    far = httpx.ASGITransport(app=app, client=("192.0.2.7", 40000))
    async with httpx.AsyncClient(transport=far, base_url="http://sim.example") as http:
        refused = await http.get("/console/sign-in")
        assert refused.status_code == 403 and "--console-anywhere" in refused.text
        assert (await http.get("/healthz")).status_code == 200  # the auth centre still serves
    anywhere = dataclasses.replace(state.setup, anywhere=True)
    app = create_auth_centre(console_world(), callback_base="http://127.0.0.1:9", console=anywhere)
    far = httpx.ASGITransport(app=app, client=("192.0.2.7", 40000))
    async with httpx.AsyncClient(transport=far, base_url="http://sim.example") as http:
        assert (await http.get("/console/sign-in")).status_code == 200


async def test_the_cas_login_asks_for_a_new_password_too_and_forgets_a_deleted_member(
    served: tuple[str, str, ConsoleState], console: Console
) -> None:
    identity, sim, state = served
    await with_member(console, "larch", "max", "+8613700000061")
    initial = state.scenario.tenant("larch").member("max").password
    service = f"{identity}/sso/cas/{state.scenario.app_id}"
    async with httpx.AsyncClient(base_url=sim) as browser:
        fields = {"service": service, "username": "max@larch", "password": initial}
        form = await browser.post("/api/v1/cas/p3/login", data=fields)
        assert form.status_code == 200 and "change-password" in form.text
        ticket = form.text.split('name="ticket" value="')[1].split('"')[0]
        new = {"ticket": ticket, "new_password": "Larch-pass-2027", "again": "Larch-pass-2027"}
        sent_on = await browser.post("/api/v1/login/change-password", data=new)
        assert sent_on.status_code == 302 and sent_on.headers["location"].startswith(service)
        used = await browser.post("/api/v1/login/change-password", data=new)
        assert used.status_code == 400 and "Sign in again" in used.text  # the ticket is burnt
        service_ticket = sent_on.headers["location"].split("ticket=")[1]

        await console.post("/console/enterprises/larch/members/max/disable")
        await console.post("/console/enterprises/larch/members/max/delete")
        again = await browser.get("/api/v1/cas/p3/login", params={"service": service})
        assert again.status_code == 200 and 'name="password"' in again.text  # SSO ended
        checked = await browser.get(
            "/api/v1/cas/p3/serviceValidate", params={"service": service, "ticket": service_ticket}
        )
        failure = checked.json()["serviceResponse"]["authenticationFailure"]
        assert failure["code"] == "INVALID_TICKET"


def _with(data: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["tenants"][0]["departments"][1].update(parentCode="acme-web"), "cycle"),
        (
            lambda d: d["tenants"][0]["departments"][3].update(orgName="研发部"),
            "orgName 研发部 is taken under its parent",
        ),
        (lambda d: d.update(tenants=[]), "a scenario needs at least one tenant"),
        (
            lambda d: d.update(
                buyer=BUYER,
                tenants=[
                    {**d["tenants"][0], "tenantId": f"t{n}", "tenantCode": f"c{n}",
                     "order": {"orderId": f"o{n}", "orderLineId": "1",
                               "customerId": BUYER["customerId"]}}
                    for n in range(6)
                ],
            ),
            "would manage 6 enterprises: at most 5",
        ),
    ],
)  # fmt: skip
def test_a_scenario_file_obeys_the_rules_the_console_does(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    """One rule for both: what the console refuses, a scenario file may not hold either."""
    file = tmp_path / "scenario.json"
    file.write_text(json.dumps(_with(world_data(), change)), "utf-8")
    with pytest.raises(ScenarioError, match=re.escape(message)):
        load_scenario(file)


class Slow(Messages):
    """A development sender that takes its time, as an SMS gateway may."""

    async def send(self, message: Message) -> None:
        await asyncio.sleep(0.3)
        await super().send(message)


async def test_two_resets_at_once_send_one_code_and_a_code_not_sent_does_not_count(
    served: tuple[str, str, ConsoleState], console: Console, tmp_path: Path
) -> None:
    _identity, _sim, state = served
    await with_member(console, "maple", "oak", "+8613700000081")
    path = "/console/enterprises/maple/members/oak/reset"
    fields = {"new_password": "Maple-pass-2027", "again": "Maple-pass-2027"}
    working = state.messages
    state.messages = Messages(tmp_path)  # a directory: the code cannot be written
    unsent = await console.post(path, **fields)
    assert unsent.status_code == 422 and "could not be sent" in shown(unsent, "error")
    state.messages = Slow(working.path)

    both = await asyncio.gather(console.post(path, **fields), console.post(path, **fields))
    assert sorted(bool(shown(page, "sent-to")) for page in both) == [False, True]
    held = next(page for page in both if not shown(page, "sent-to"))
    assert "Next allowed in 180 s" in shown(held, "error")
    assert working.path is not None
    sent = [json.loads(line) for line in working.path.read_text("utf-8").splitlines()]
    assert [m["kind"] for m in sent if m["to"] == BUYER["mobile"]] == ["reset_code"]


async def test_ten_wrong_passwords_close_the_sign_in_for_fifteen_minutes(
    served: tuple[str, str, ConsoleState], clock: Clock
) -> None:
    stranger = Console(served[1])
    try:
        for _ in range(10):
            assert (await stranger.sign_in(password="not-it")).status_code == 401
        clock.advance(60)
        closed = await stranger.sign_in()  # the right password, too late
        assert closed.status_code == 429 and "wait 840 s" in shown(closed, "error")
        clock.advance(839)
        assert (await stranger.sign_in()).status_code == 429
        clock.advance(1)
        opened = await stranger.sign_in()
        assert opened.url.path == "/console", shown(opened, "error")
    finally:
        await stranger.close()


async def test_the_sign_in_form_needs_its_own_token(served: tuple[str, str, ConsoleState]) -> None:
    stranger = Console(served[1])
    try:
        await stranger.get("/console/sign-in")  # a session, and its token, to leave out
        fields = {"account": BUYER["account"], "password": BUYER["password"]}
        for token in ({}, {"csrf": "forged"}):
            forged = await stranger.http.post("/console/sign-in", data=fields | token)
            assert forged.status_code == 403 and "The form expired" in shown(forged, "error")
            assert (await stranger.http.get("/console")).url.path == "/console/sign-in"
    finally:
        await stranger.close()


async def test_every_page_is_not_stored_not_framed_and_runs_no_script(
    served: tuple[str, str, ConsoleState], console: Console
) -> None:
    await console.post("/console/enterprises", name="Nut", code="nut")
    stranger = Console(served[1])
    try:
        pages = [
            await stranger.get("/console/sign-in"),
            await console.get("/console"),
            await console.get("/console/enterprises/nut"),
            await console.post("/console/enterprises", name="Twin", code="nut"),  # 422
            await console.get("/console/enterprises/none"),  # 404
            await console.http.post("/console/enterprises", data={"csrf": "x"}),  # 403
        ]
    finally:
        await stranger.close()
    assert [p.status_code for p in pages] == [200, 200, 200, 422, 404, 403]
    for page in pages:
        assert page.headers["cache-control"] == "no-store"
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert page.headers["x-frame-options"] == "DENY"
        assert "<script" not in page.text.lower()


async def test_an_import_is_refused_whole_over_500_rows_512_kib_or_not_in_utf_8(
    served: tuple[str, str, ConsoleState], console: Console
) -> None:
    state = served[2]
    await console.post("/console/enterprises", name="Olive", code="olive")
    path = "/console/enterprises/olive/members/import"

    def csv(count: int, pad: str = "") -> bytes:
        lines = [f"u{n},User {n}{pad},olive,+86137{n:08d}" for n in range(count)]
        return "\n".join(["account,name,department,mobile", *lines]).encode()

    for content, reason, status in (
        (csv(501), "At most 500 rows at a time", 422),
        (csv(500, pad="x" * 1100), "The file is larger than 512 KiB", 422),  # read, refused
        (csv(500, pad="x" * 2000), "The file is larger than 512 KiB", 413),  # not even read
        ("account,name,department,mobile\nzoë,Zoë,olive,+8613700000091\n".encode("latin-1"),
         "The file must be a UTF-8 CSV", 422),
    ):  # fmt: skip
        page = await console.upload(path, content)
        assert page.status_code == status and reason in page.text, (status, page.text)
        assert state.scenario.tenant("olive").members == []
    assert state.messages.path is not None and not state.messages.path.exists()

    page = await console.upload(path, csv(500))
    assert "500 added, 0 failed" in shown(page, "result-text")
    assert len(state.scenario.tenant("olive").members) == 500
