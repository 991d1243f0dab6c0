"""Sign-in with a CAS ticket (the enterprise workbench): the ticket validated at the tenant's
auth centre for the callback as it was called, the answer read in JSON or XML, then the member
admitted as after any marketplace login, and refused as any other when they may not."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from playwright.sync_api import expect

from identity.settings import Settings
from identity.sso import cas
from identity.sso.upstream import UpstreamError
from tests.helpers.auth_centres import Script, answer, auth_centre, identity_with, provision
from tests.helpers.chromium import (
    VIEWPORTS,
    chromium_page,
    needs_chromium,
    shooter,
    sign_in_at_auth_centre,
)
from tests.helpers.simulator_world import APP_ID, login_form, world
from tests.helpers.stack import Stack

ACME = world().tenant("acme")
TENANT = ACME.tenant_id
ALICE = ACME.member("alice")
BASE = "https://identity.example.com"
CAS_CALLBACK = f"/sso/cas/{APP_ID}"


def _success(**attributes: object) -> bytes:
    found = {"userName": "alice", "tenant": TENANT, "role": "user"} | attributes
    body = {"serviceResponse": {"authenticationSuccess": {"user": "alice", "attributes": found}}}
    return json.dumps(body).encode()


XML_SUCCESS = f"""<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas">
  <cas:authenticationSuccess>
    <cas:user>alice</cas:user>
    <cas:attributes>
      <cas:userName>alice</cas:userName>
      <cas:tenant>{TENANT}</cas:tenant>
      <cas:organizationCode>d-1</cas:organizationCode>
      <cas:organizationCode>d-2</cas:organizationCode>
      <cas:name>爱丽丝 &amp; co</cas:name>
    </cas:attributes>
  </cas:authenticationSuccess>
</cas:serviceResponse>""".encode()


def test_a_json_answer_names_the_member_whether_attributes_are_values_or_lists() -> None:
    info = cas.parse(200, _success(organizationCode=["d-1"], name="Alice"))
    assert info == {
        "userName": "alice",
        "tenant": TENANT,
        "role": "user",
        "organizationCode": "d-1",
        "name": "Alice",
    }


def test_an_xml_answer_names_the_member_and_a_list_of_several_is_no_value() -> None:
    info = cas.parse(200, XML_SUCCESS)
    assert info["userName"] == "alice" and info["tenant"] == TENANT
    assert info["name"] == "爱丽丝 & co"
    assert info["organizationCode"] is None  # two values: which one is meant cannot be told


@pytest.mark.parametrize(
    ("status", "raw", "kind"),
    [
        (200, b'{"serviceResponse":{"authenticationFailure":{"code":"INVALID_TICKET"}}}',
         "invalid_grant"),
        (200, b'<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas">'
              b'<cas:authenticationFailure code="INVALID_SERVICE">no</cas:authenticationFailure>'
              b"</cas:serviceResponse>", "invalid_grant"),
        (200, b'{"serviceResponse":{"authenticationSuccess":{"attributes":{}}}}', "bad_response"),
        (200, b'{"serviceResponse":{}}', "bad_response"),
        (200, b"<html>login</html", "bad_response"),
        (200, b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
              b"<x>&b;</x>", "bad_response"),
        (200, b"ST-1 yes", "bad_response"),
        (503, b"", "server_error"),
        (404, b"", "bad_response"),
    ],
)  # fmt: skip
def test_an_answer_that_names_no_member_is_refused(status: int, raw: bytes, kind: str) -> None:
    with pytest.raises(UpstreamError) as refused:
        cas.parse(status, raw)
    assert refused.value.kind == kind


def test_the_service_is_the_callback_as_called_without_the_ticket() -> None:
    query = "tenant=t%2D1&ticket=ST-1-abc&lang=zh&ticket=ST-2"
    assert (
        cas.service_url(BASE + "/", "app-1", query) == f"{BASE}/sso/cas/app-1?tenant=t%2D1&lang=zh"
    )
    assert cas.service_url(BASE, "app-1", "ticket=ST-1") == f"{BASE}/sso/cas/app-1"


@contextmanager
def cas_centre(body: bytes) -> Iterator[tuple[str, list[str]]]:
    """A tenant's auth centre whose serviceValidate answers `body` (and whose token and userinfo
    answer nothing useful); yields its URL and the paths it was asked."""
    asked: list[str] = []

    def respond(handler: BaseHTTPRequestHandler, _script: Script) -> None:
        asked.append(handler.path)
        answer(handler, 200, body.decode())

    with auth_centre(respond=respond) as server:
        yield server.url, asked


async def test_a_valid_ticket_signs_the_member_in(
    settings: Settings, private_key_file: Path
) -> None:
    with cas_centre(_success()) as (domain, asked):
        async with identity_with(settings) as identity:
            await provision(identity, private_key_file, domain)
            asked.clear()
            signed = await identity.get(
                CAS_CALLBACK, params={"tenant": TENANT, "ticket": "ST-1-abc"}
            )
            identity.cookies = signed.cookies
            me = await identity.get("/sso/session")
    assert signed.status_code == 303, signed.text
    assert me.status_code == 200 and me.json()["userName"] == "alice"
    [path] = asked
    assert urlsplit(path).path == cas.VALIDATE_PATH
    query = parse_qs(urlsplit(path).query)
    assert query["service"] == [f"{BASE}{CAS_CALLBACK}?tenant={TENANT}"]
    assert query["ticket"] == ["ST-1-abc"] and query["format"] == ["JSON"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"serviceResponse":{"authenticationFailure":{"code":"INVALID_TICKET"}}}',
         "code_invalid"),
        (_success(tenant="t-other"), "tenant_mismatch"),
        (_success(userName="nobody", user="nobody"), "member_unknown"),
    ],
)  # fmt: skip
async def test_a_refused_ticket_or_member_gets_the_refusal_page_and_no_session(
    settings: Settings, private_key_file: Path, body: bytes, reason: str
) -> None:
    with cas_centre(body) as (domain, _asked):
        async with identity_with(settings) as identity:
            await provision(identity, private_key_file, domain)
            refused = await identity.get(
                CAS_CALLBACK,
                params={"tenant": TENANT, "ticket": "ST-9"},
                headers={"accept": "text/html"},
            )
    assert refused.status_code in (400, 403, 404)
    assert reason in refused.text
    assert "set-cookie" not in {
        k.lower() for k in refused.headers if "session" in refused.headers[k]
    }


async def test_a_callback_without_ticket_or_tenant_is_a_bad_request(settings: Settings) -> None:
    async with identity_with(settings) as identity:
        without_ticket = await identity.get(CAS_CALLBACK, params={"tenant": TENANT})
        without_tenant = await identity.get(CAS_CALLBACK, params={"ticket": "ST-1"})
    assert without_ticket.status_code == without_tenant.status_code == 400


def _workbench_link(stack: Stack, tenant_id: str) -> str:
    """Where the enterprise workbench sends a member: the auth centre's CAS login, with
    identity's CAS callback for the tenant as the service."""
    service = f"{stack.identity}{CAS_CALLBACK}?tenant={tenant_id}"
    return f"{stack.sim}/api/v1/cas/p3/login?service={quote(service, safe='')}"


async def test_the_workbench_signs_a_member_in_with_a_ticket_once(acme: Stack) -> None:
    """Through the simulator's CAS login over HTTP: signed in, by the marketplace; the same
    ticket a second time is refused (the auth centre burnt it)."""
    browser = acme.browser()
    try:
        page = await browser.get(_workbench_link(acme, TENANT))
        landed = await browser.submit_login(page, "alice@acme", ALICE.password)
        assert landed.status_code == 200, landed.text
        assert (await browser.session()).json()["userName"] == "alice"
        callback = next(r for r in browser.history if "ticket=ST-" in r.headers.get("location", ""))
        other = acme.browser()
        try:
            again = await other.http.get(callback.headers["location"])
        finally:
            await other.close()
        assert again.status_code == 400 and "code_invalid" in again.text
    finally:
        await browser.close()


async def test_a_ticket_for_someone_else_asks_before_switching(acme: Stack) -> None:
    browser = acme.browser()
    try:
        await browser.flow_a("bob@acme", "bob-pw")
        await browser.http.get(acme.sim + "/api/v1/logout")  # forget bob at the auth centre
        page = await browser.get(_workbench_link(acme, TENANT))
        asked = await browser.submit_login(page, "alice@acme", ALICE.password)
        form = login_form(asked.text)
        assert asked.status_code == 200 and form.action == "/sso/continue", asked.text
        landed = await browser.post(form.action, data=form.inputs)
        assert landed.status_code == 200, landed.text
        assert (await browser.session()).json()["userName"] == "alice"
    finally:
        await browser.close()


@needs_chromium
@pytest.mark.parametrize("viewport", VIEWPORTS, ids=list(VIEWPORTS))
def test_a_member_signs_in_from_the_workbench_in_a_browser(
    demo: dict[str, str], viewport: str, tmp_path: Path
) -> None:
    shot = shooter(tmp_path, viewport)
    with chromium_page(viewport) as page:
        page.goto(demo["workbench"])
        shot(page, "cas-login")
        sign_in_at_auth_centre(page, demo["account"], demo["password"])
        expect(page).to_have_url(re.compile(re.escape(demo["identity"]) + r"/sso/me"))
        expect(page.locator("body")).to_contain_text(demo["account"].split("@")[0])
        shot(page, "cas-signed-in")
        page.goto(demo["identity"] + "/sso/logout")
        page.get_by_role("button", name=re.compile("Sign out")).click()
