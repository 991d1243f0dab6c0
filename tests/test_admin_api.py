"""`/api/admin` over real HTTP, identity and the simulator as processes: who may use it, the
member list and its keyset pages, one member, ending their sessions, departments, syncs, and
tenant isolation whatever ids a request sends."""

from __future__ import annotations

import httpx2 as httpx

from identity.simulator import sender as events
from tests.helpers.admin_api import api, problem, signed_in
from tests.helpers.stack import Browser, Browsers, Stack


async def test_without_a_session_it_is_401_and_for_a_plain_member_403(
    acme: Stack, browsers: Browsers
) -> None:
    problem(await api(browsers(), "GET", "/members"), 401, "unauthenticated")
    bob = await signed_in(acme, browsers(), "bob@acme", "bob-pw")
    for path in ("/members", "/members/bob", "/departments", "/syncs"):
        problem(await api(bob, "GET", path), 403, "forbidden")
    problem(await api(bob, "POST", "/members/alice/end-sessions"), 403, "forbidden")


async def test_the_member_list_shows_each_member_once_in_pages(alice: Browser) -> None:
    everyone = await api(alice, "GET", "/members")
    assert everyone.status_code == 200 and everyone.headers["cache-control"] == "no-store"
    body = everyone.json()
    assert body["nextCursor"] is None
    by_name = {item["userName"]: item for item in body["items"]}
    assert list(by_name) == sorted(by_name) and {"alice", "bob", "carol"} <= set(by_name)
    assert by_name["alice"] == {
        "userName": "alice",
        "name": "Alice 爱丽丝",
        "orgCode": "acme",
        "role": "admin",
        "state": "enabled",
        "enabled": True,
        "lastLoginAt": by_name["alice"]["lastLoginAt"],
    }
    assert by_name["alice"]["lastLoginAt"].endswith("Z")  # she just signed in
    assert by_name["bob"]["lastLoginAt"] is None and by_name["bob"]["role"] == "user"
    assert (by_name["carol"]["state"], by_name["carol"]["enabled"]) == ("disabled", False)

    seen: list[str] = []
    cursor = ""
    while True:
        page = (await api(alice, "GET", "/members", params={"limit": 1, "cursor": cursor})).json()
        assert len(page["items"]) == 1
        seen += [item["userName"] for item in page["items"]]
        if page["nextCursor"] is None:
            break
        cursor = page["nextCursor"]
    assert seen == list(by_name)


async def test_search_and_filters(acme: Stack, alice: Browser) -> None:
    async def names(**params: str) -> list[str]:
        answer = await api(alice, "GET", "/members", params=params)
        assert answer.status_code == 200, answer.text
        return [item["userName"] for item in answer.json()["items"]]

    assert await names(q="bo") == ["bob"]  # prefix of the account
    assert await names(q="Alice") == ["alice"]  # prefix of the name
    assert await names(q="zzz") == []
    assert await names(org_code="acme-sales") == ["carol"]
    assert await names(state="disabled") == ["carol"]
    await events.cancel_authorisation(acme.sender, acme.tenant("acme"), "bob")
    assert await names(state="cancelled") == ["bob"]
    assert "bob" not in await names(state="enabled")
    problem(await api(alice, "GET", "/members", params={"state": "sleepy"}), 400, "bad_request")
    problem(await api(alice, "GET", "/members", params={"limit": 0}), 400, "bad_request")
    problem(await api(alice, "GET", "/members", params={"cursor": "%%%"}), 400, "bad_request")


async def test_one_member_with_apps_and_sessions_and_ending_them(
    acme: Stack, alice: Browser, browsers: Browsers
) -> None:
    bob = await signed_in(acme, browsers(), "bob@acme", "bob-pw")
    detail = await api(alice, "GET", "/members/bob")
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert body["userName"] == "bob" and body["department"] == "前端组"
    assert [app["state"] for app in body["apps"]] == ["authorised"]
    assert len(body["sessions"]) == 1 and body["sessions"][0]["appId"] == acme.scenario.app_id
    assert "mobile" not in body and "password" not in str(body).lower()
    problem(await api(alice, "GET", "/members/nobody"), 404, "member_not_found")

    problem(await api(alice, "POST", "/members/bob/end-sessions", csrf=False), 403, "csrf_failed")
    bad = {"X-CSRF-Token": "forged"}
    problem(await api(alice, "POST", "/members/bob/end-sessions", headers=bad), 403, "csrf_failed")
    assert (await bob.session()).status_code == 200  # nothing happened yet

    ended = await api(alice, "POST", "/members/bob/end-sessions")
    assert ended.status_code == 200 and ended.json() == {"sessionsEnded": 1}
    told = await bob.session()
    assert told.status_code == 401 and told.json()["reason"] == "admin_ended"
    assert (await api(alice, "GET", "/members/bob")).json()["sessions"] == []
    again = await api(alice, "POST", "/members/bob/end-sessions")
    assert again.json() == {"sessionsEnded": 0}
    problem(await api(alice, "POST", "/members/nobody/end-sessions"), 404, "member_not_found")


async def test_an_admin_sees_and_touches_only_their_own_tenant(
    acme: Stack, alice: Browser, browsers: Browsers
) -> None:
    await acme.provision("beta")
    beta = acme.tenant("beta")
    await events.set_role(acme.sender, beta, "alice", "admin")
    beta_admin = await signed_in(acme, browsers(), "alice@beta", "beta-pw")
    bob = await signed_in(acme, browsers(), "bob@acme", "bob-pw")

    listed = (await api(beta_admin, "GET", "/members")).json()["items"]
    assert [item["userName"] for item in listed] == ["alice"]
    assert listed[0]["name"] == "Alice of Beta"
    problem(await api(beta_admin, "GET", "/members/bob"), 404, "member_not_found")
    problem(await api(beta_admin, "POST", "/members/bob/end-sessions"), 404, "member_not_found")
    for other in ("bob@acme", "bob@ACME"):
        problem(await api(beta_admin, "GET", f"/members/{other}"), 403, "forbidden")
        problem(await api(beta_admin, "POST", f"/members/{other}/end-sessions"), 403, "forbidden")
    acme_id = acme.tenant("acme").tenant_id
    for name in ("tenant_id", "tenantId", "tenant"):
        sent = {name: acme_id}
        problem(await api(beta_admin, "GET", "/members", params=sent), 403, "forbidden")
    assert (await bob.session()).status_code == 200  # untouched
    # Her own tenant, named explicitly, is fine.
    own = await api(beta_admin, "GET", "/members/alice@beta", params={"tenant": "beta"})
    assert own.status_code == 200 and own.json()["name"] == "Alice of Beta"
    departments = (await api(beta_admin, "GET", "/departments")).json()["items"]
    assert [d["orgCode"] for d in departments] == ["beta"]
    calls = (await api(beta_admin, "GET", "/syncs")).json()["items"]
    assert calls and all(
        set(c) == {"interface", "resultCode", "resultMsg", "receivedAt", "test"} for c in calls
    )


async def test_losing_the_admin_role_ends_admin_rights_at_once(acme: Stack, alice: Browser) -> None:
    assert (await api(alice, "GET", "/members")).status_code == 200
    await events.set_role(acme.sender, acme.tenant("acme"), "alice", "user")
    problem(await api(alice, "GET", "/members"), 403, "forbidden")
    await events.set_role(acme.sender, acme.tenant("acme"), "alice", "admin")
    assert (await api(alice, "GET", "/members")).status_code == 200
    await events.disable_member(acme.sender, acme.tenant("acme"), "alice")
    problem(await api(alice, "GET", "/members"), 401, "unauthenticated")


async def test_departments_are_a_tree_and_syncs_are_newest_first(alice: Browser) -> None:
    tree = (await api(alice, "GET", "/departments")).json()["items"]
    assert [d["orgCode"] for d in tree] == ["acme"]
    children = {d["orgCode"]: d for d in tree[0]["children"]}
    assert set(children) == {"acme-rd", "acme-sales"}
    assert [d["orgCode"] for d in children["acme-rd"]["children"]] == ["acme-web"]
    assert children["acme-sales"]["members"] >= 1

    first = (await api(alice, "GET", "/syncs", params={"limit": 2})).json()
    assert len(first["items"]) == 2 and first["nextCursor"]
    rest = (await api(alice, "GET", "/syncs", params={"cursor": first["nextCursor"]})).json()
    times = [c["receivedAt"] for c in first["items"] + rest["items"]]
    assert times == sorted(times, reverse=True)
    assert "authSync" in {c["interface"] for c in first["items"] + rest["items"]}


async def test_the_admin_api_is_in_the_openapi_document(acme: Stack) -> None:
    async with httpx.AsyncClient(base_url=acme.identity) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/api/admin/members", "/api/admin/members/{user_name}/end-sessions"} <= set(paths)
