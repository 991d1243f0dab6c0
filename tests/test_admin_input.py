"""Crafted input to the admin API and console, over real HTTP on both databases: control
characters anywhere, numbers out of range, cursors that decode to nonsense, repeated
`tenant`-like parameters and tenant codes that equal another tenant's id. Each is a 400 (or a
403 naming another tenant) in the surface's own shape, and changes nothing; never a 500."""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx2 as httpx
import pytest

from identity.simulator import sender as events
from tests.helpers.admin_api import api, problem, signed_in
from tests.helpers.stack import Browser, Browsers, Stack

NUL = "\x00"


def cursor_of(text: str) -> str:
    """A cursor in the API's encoding, of text it never gave."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def refused_page(response: httpx.Response, status: int, reason: str) -> None:
    """The console's own error page, not JSON, not a failure."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert f'<span id="reason">{reason}</span>' in response.text
    assert "location" not in response.headers


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/syncs", {"cursor": cursor_of("²")}),  # isdigit() says yes, int() says no
        ("/syncs", {"cursor": cursor_of("9" * 30)}),  # past any integer column
        ("/syncs", {"cursor": cursor_of("-5")}),
        ("/syncs", {"limit": "²"}),
        ("/syncs", {"limit": "9" * 30}),
        ("/members", {"cursor": cursor_of(f"bob{NUL}")}),
        ("/members", {"limit": "-1"}),
    ],
)
async def test_a_cursor_or_number_the_api_never_gave_is_a_bad_request(
    alice: Browser, path: str, params: dict[str, str]
) -> None:
    problem(await api(alice, "GET", path, params=params), 400, "bad_request")


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("GET", "/members", {"q": f"bo{NUL}"}),
        ("GET", "/members", {"org_code": f"acme{NUL}"}),
        ("GET", "/members", {"cursor": f"Ym9i{NUL}"}),
        ("GET", "/members", {"state": f"enabled{NUL}"}),
        ("GET", "/members", {"q": "bo\tb"}),
        ("GET", "/members", {f"x{NUL}": "1"}),
        ("GET", "/members", {"tenant": f"acme{NUL}"}),
        ("GET", "/members/bo%00b", {}),
        ("GET", "/members/bob%00@acme", {}),
        ("GET", "/members/bob@ac%00me", {}),
        ("GET", "/syncs", {"cursor": f"MQ{NUL}"}),
        ("POST", "/members/bo%00b/end-sessions", {}),
        ("POST", "/members/bo%00b/password-resets", {}),
        ("POST", "/password-resets/r%00/confirm", {}),
    ],
)
async def test_a_control_character_in_api_input_is_a_bad_request(
    acme: Stack, alice: Browser, method: str, path: str, params: dict[str, str]
) -> None:
    body = {"json": {"code": "123456"}} if path.endswith("/confirm") else {}
    problem(await api(alice, method, path, params=params, **body), 400, "bad_request")


async def test_a_refused_control_character_changes_nothing(
    acme: Stack, alice: Browser, browsers: Browsers
) -> None:
    bob = await signed_in(acme, browsers(), "bob@acme", "bob-pw")
    problem(await api(alice, "POST", "/members/bob%00/end-sessions"), 400, "bad_request")
    confirm = {"json": {"code": f"12345{NUL}"}}
    problem(await api(alice, "POST", "/password-resets/r/confirm", **confirm), 400, "bad_request")
    assert (await bob.session()).status_code == 200


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/admin/members/alice", {"wait": "999999999999"}),  # past what a date can hold
        ("/admin/members/alice", {"wait": "²"}),
        ("/admin/members/alice", {"wait": "soon"}),
        ("/admin/members/alice", {"ended": "9" * 30}),
        ("/admin/members/alice", {"ended": "-7"}),
        ("/admin/members/alice", {"reset": f"done{NUL}"}),
        ("/admin/members/ali%00ce", {}),
        ("/admin", {"q": f"bo{NUL}"}),
        ("/admin", {"org_code": f"acme{NUL}"}),
        ("/admin", {"cursor": f"Ym9i{NUL}"}),
        ("/admin", {"cursor": cursor_of(f"bob{NUL}")}),
        ("/admin", {"state": "sleepy"}),
        ("/admin/syncs", {"cursor": cursor_of("²")}),
        ("/admin/syncs", {"cursor": f"MQ{NUL}"}),
        ("/admin/departments", {"tenant": f"x{NUL}"}),
    ],
)
async def test_a_crafted_console_parameter_is_the_console_error_page(
    alice: Browser, path: str, params: dict[str, str]
) -> None:
    page = await alice.http.get(alice.stack.identity + path, params=params)
    refused_page(page, 400, "bad_request")


async def test_a_control_character_in_a_console_form_is_the_console_error_page(
    acme: Stack, alice: Browser, browsers: Browsers
) -> None:
    bob = await signed_in(acme, browsers(), "bob@acme", "bob-pw")
    csrf = (await alice.session()).json()["csrfToken"]
    identity = acme.identity
    posts = [
        ("/admin/members/bob/end-sessions", {"csrf": csrf, "x": f"a{NUL}"}),
        ("/admin/members/bob%00/end-sessions", {"csrf": csrf}),
        ("/admin/password-resets/r/confirm", {"csrf": csrf, "code": "1", "target": f"b{NUL}"}),
        ("/admin/password-resets/r/confirm", {"csrf": csrf, "code": f"1{NUL}", "target": "bob"}),
    ]
    for path, form in posts:
        refused_page(await alice.http.post(identity + path, data=form), 400, "bad_request")
    assert (await bob.session()).status_code == 200  # nothing ended


async def test_a_console_form_that_cannot_be_read_as_one_is_the_console_error_page(
    acme: Stack, alice: Browser, browsers: Callable[[], Browser]
) -> None:
    """A field sent twice (even with one value), a multipart form, more than 16 KiB or more
    than 8 fields: refused before anything is done."""
    bob = await signed_in(acme, browsers(), "bob@acme", "bob-pw")
    csrf = (await alice.session()).json()["csrfToken"]
    url = acme.identity + "/admin/members/bob/end-sessions"
    urlencoded = {"Content-Type": "application/x-www-form-urlencoded"}
    unreadable: list[dict[str, Any]] = [
        {"content": urlencode([("csrf", csrf), ("csrf", csrf)]), "headers": urlencoded},
        {"data": {"csrf": csrf}, "files": {"f": ("a.txt", b"x")}},
        {"data": {"csrf": csrf, "pad": "x" * 17_000}},
        {"data": {"csrf": csrf} | {f"f{i}": "" for i in range(8)}},
    ]
    for sent in unreadable:
        refused_page(await alice.http.post(url, **sent), 400, "bad_request")
    assert (await bob.session()).status_code == 200  # nothing ended


@pytest.fixture
async def beta_admin(acme: Stack, browsers: Browsers) -> Browser:
    """alice@beta, beta's admin, signed in."""
    await acme.provision("beta")
    await events.set_role(acme.sender, acme.tenant("beta"), "alice", "admin")
    return await signed_in(acme, browsers(), "alice@beta", "beta-pw")


async def test_a_repeated_tenant_parameter_is_refused_whichever_comes_last(
    acme: Stack, beta_admin: Browser
) -> None:
    acme_id, beta_id = acme.tenant("acme").tenant_id, acme.tenant("beta").tenant_id
    for repeated in ([acme_id, "beta"], ["beta", acme_id], [beta_id, beta_id]):
        params = [("tenant", value) for value in repeated]
        problem(await api(beta_admin, "GET", "/members", params=params), 400, "bad_request")
    spelt_twice = [("tenant_id", beta_id), ("tenantId", acme_id)]  # one parameter, two spellings
    problem(await api(beta_admin, "GET", "/members", params=spelt_twice), 400, "bad_request")
    page = await beta_admin.http.get(acme.identity + "/admin", params=spelt_twice)
    refused_page(page, 400, "bad_request")
    # Every tenant-like parameter is checked, whatever its spelling.
    for name in ("tenant", "TENANT", "tenant-id", "Tenant_Id"):
        sent = [("tenant_code", "beta"), (name, acme_id)]
        problem(await api(beta_admin, "GET", "/members", params=sent), 403, "forbidden")
    own = [("tenant", "beta"), ("tenantId", beta_id), ("TenantCode", "BETA")]
    assert (await api(beta_admin, "GET", "/members", params=own)).status_code == 200


async def test_a_tenant_code_equal_to_another_tenants_id_names_that_tenant(
    acme: Stack, alice: Browser, beta_admin: Browser
) -> None:
    """Beta takes acme's tenant id as its code (a signed tenantSync): a reference is matched by
    id first, as `/sso/login` matches it, so acme's id still names acme, never beta."""
    acme_id, beta_id = acme.tenant("acme").tenant_id, acme.tenant("beta").tenant_id
    impostor = acme.tenant("beta").model_copy(update={"tenant_code": acme_id})
    await events.bind(acme.sender, impostor)

    problem(await api(beta_admin, "GET", "/members", params={"tenant": acme_id}), 403, "forbidden")
    problem(await api(beta_admin, "GET", f"/members/alice@{acme_id}"), 403, "forbidden")
    path = f"/members/alice@{acme_id}/end-sessions"
    problem(await api(beta_admin, "POST", path), 403, "forbidden")
    page = await beta_admin.http.get(f"{acme.identity}/admin/members/alice@{acme_id}")
    refused_page(page, 403, "forbidden")
    # Beta's own id still names beta; acme's admin naming acme's id is at home.
    assert (await api(beta_admin, "GET", f"/members/alice@{beta_id}")).status_code == 200
    mine = await api(alice, "GET", "/members/bob@" + acme_id, params={"tenant": acme_id})
    assert mine.status_code == 200 and mine.json()["userName"] == "bob"
    assert "Alice of Beta" not in html.unescape(mine.text)
