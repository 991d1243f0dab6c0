"""The simulator's auth centre over ASGI: the CAS 3.0 login and serviceValidate of the
enterprise workbench (identity/simulator/cas.py)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

import httpx2 as httpx
import pytest

from identity.simulator.authcentre import create_auth_centre
from identity.simulator.scenario import Scenario
from tests.helpers.clock import Clock
from tests.helpers.simulator_world import (
    ACME,
    BETA,
    IDENTITY,
    SIM,
    login_form,
    sign_in,
    submit,
    world,
    world_data,
)

LOGIN = "/api/v1/cas/p3/login"
VALIDATE = "/api/v1/cas/p3/serviceValidate"
SERVICE = f"{IDENTITY}/sso/cas/demo-app?tenant={ACME['tenantId']}"
OTHER_APP = "second-app"
NS = {"cas": "http://www.yale.edu/tp/cas"}
TICKET = re.compile(r"ST-[A-Za-z0-9_-]{28}")
ALICE = {
    "userName": "alice",
    "tenant": ACME["tenantId"],
    "role": "admin",
    "organizationCode": "acme",
    "name": "Alice 爱丽丝",
}


def _scenario(**changes: Any) -> Scenario:
    data = world_data()
    data["otherAppIds"] = [OTHER_APP]
    for member in data["tenants"][0]["members"]:
        member.update(changes.get(member["userName"], {}))
    return Scenario.model_validate(data)


def _client(clock: Clock, scenario: Scenario | None = None) -> httpx.AsyncClient:
    app = create_auth_centre(
        scenario or _scenario(), callback_base="https://identity.example.com/", clock=clock
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=SIM)


@pytest.fixture
async def sim(clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(clock) as client:
        yield client


def _ticket(response: httpx.Response, service: str = SERVICE) -> str:
    """The ticket of a redirect back to `service`, checking that nothing else changed."""
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    joiner = "&" if "?" in service else "?"
    assert location.startswith(f"{service}{joiner}ticket="), location
    ticket = location.removeprefix(f"{service}{joiner}ticket=")
    assert TICKET.fullmatch(ticket), ticket
    return ticket


async def _log_in(
    sim: httpx.AsyncClient, user: str = "alice@acme", pw: str = "alice-pw", service: str = SERVICE
) -> str:
    page = await sim.get(LOGIN, params={"service": service})
    assert page.status_code == 200, page.text
    return _ticket(await submit(sim, page, user, pw), service)


async def _validate(
    sim: httpx.AsyncClient, ticket: str, service: str = SERVICE, **extra: str
) -> dict[str, Any]:
    """serviceValidate's JSON answer, checking the CAS 3.0 status and no-store."""
    response = await sim.get(VALIDATE, params={"service": service, "ticket": ticket, **extra})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    return response.json()  # type: ignore[no-any-return]


def _success(user: str, attributes: dict[str, str]) -> dict[str, Any]:
    return {"serviceResponse": {"authenticationSuccess": {"user": user, "attributes": attributes}}}


def _failure_code(answer: dict[str, Any]) -> str:
    failure = answer["serviceResponse"]["authenticationFailure"]
    assert set(failure) == {"code", "description"} and failure["description"]
    return str(failure["code"])


# --- login -----------------------------------------------------------------------------------


async def test_the_login_form_posts_back_to_the_cas_login_with_the_service(
    sim: httpx.AsyncClient,
) -> None:
    page = await sim.get(LOGIN, params={"service": SERVICE})
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    form = login_form(page.text)
    assert form.action == LOGIN
    assert form.inputs == {"service": SERVICE, "username": "", "password": ""}
    assert "登录 / Sign in" in form.button


@pytest.mark.parametrize(
    "service",
    [SERVICE, f"{IDENTITY}/sso/cas/demo-app", f"{IDENTITY}/sso/cas/{OTHER_APP}/back?x=%2F"],
)
async def test_a_login_through_the_form_goes_back_to_the_service_with_a_ticket(
    sim: httpx.AsyncClient, service: str
) -> None:
    page = await sim.get(LOGIN, params={"service": service})
    response = await submit(sim, page, "alice@acme", "alice-pw")
    ticket = _ticket(response, service)  # `&ticket=` after a query, else `?ticket=`
    assert response.headers["cache-control"] == "no-store"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("sim_sso=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert await _validate(sim, ticket, service) == _success("alice", ALICE)


async def test_a_wrong_password_shows_the_form_again_with_401(sim: httpx.AsyncClient) -> None:
    page = await sim.get(LOGIN, params={"service": SERVICE})
    for user, pw in [("alice@acme", "bob-pw"), ("alice@nowhere", "alice-pw"), ("alice", "")]:
        again = await submit(sim, page, user, pw)
        assert again.status_code == 401
        assert "location" not in again.headers and "set-cookie" not in again.headers
        assert "账号或密码错误 / Wrong account or password" in again.text
        form = login_form(again.text)
        assert form.action == LOGIN
        assert (form.inputs["service"], form.inputs["username"]) == (SERVICE, user)
    assert not sim.cookies


async def test_a_signed_in_browser_goes_straight_back_with_a_new_ticket(
    sim: httpx.AsyncClient,
) -> None:
    first = await _log_in(sim, "bob@acme", "bob-pw")
    again = await sim.get(LOGIN, params={"service": SERVICE})
    second = _ticket(again)  # a redirect, not the form
    assert second != first and "set-cookie" not in again.headers
    bob = await _validate(sim, second)
    assert bob["serviceResponse"]["authenticationSuccess"]["user"] == "bob"
    # The session is the auth centre's, shared with the OAuth login, and ends with its logout.
    await sim.get("/api/v1/logout")
    assert (await sim.get(LOGIN, params={"service": SERVICE})).status_code == 200


async def test_an_oauth_sign_in_also_signs_the_browser_in_for_cas(sim: httpx.AsyncClient) -> None:
    await sign_in(sim, "alice@beta", "beta-pw", client_id=BETA["clientId"])
    ticket = _ticket(await sim.get(LOGIN, params={"service": SERVICE}))
    success = (await _validate(sim, ticket))["serviceResponse"]["authenticationSuccess"]
    assert (success["user"], success["attributes"]["tenant"]) == ("alice", BETA["tenantId"])


async def test_a_login_ends_the_browser_s_previous_session(sim: httpx.AsyncClient) -> None:
    await _log_in(sim)
    old = sim.cookies["sim_sso"]
    # The form, still open in another tab of the signed-in browser, is posted as bob.
    posted = await sim.post(
        LOGIN, data={"service": SERVICE, "username": "bob@acme", "password": "bob-pw"}
    )
    bob = await _validate(sim, _ticket(posted))
    assert bob["serviceResponse"]["authenticationSuccess"]["user"] == "bob"
    assert sim.cookies["sim_sso"] != old
    sim.cookies.clear()
    sim.cookies.set("sim_sso", old)  # alice's session is gone: the form again
    assert (await sim.get(LOGIN, params={"service": SERVICE})).status_code == 200


@pytest.mark.parametrize(
    "service",
    [
        None,
        "",
        "https://evil.example.com/sso/cas/demo-app",
        f"{IDENTITY}.evil.example.com/sso/cas/demo-app",
        "http://identity.example.com/sso/cas/demo-app",
        f"{IDENTITY}/sso/callback/demo-app",
        f"{IDENTITY}/sso/cas/unknown-app",
        f"{IDENTITY}/sso/cas/demo-app-evil",
        f"{IDENTITY}/sso/cas/demo-app/../../admin",
        f"{IDENTITY}/sso/cas/demo-app/%2E%2e/admin",
        f"{IDENTITY}/sso/cas/demo-app#frag",
        f"{IDENTITY}/sso/cas/demo-app?next=a b",
        f"{IDENTITY}/sso/cas/demo-app?next=\r\nSet-Cookie:x=1",
        f"{IDENTITY}/sso/cas/demo-app?name=爱",
    ],
)
async def test_a_service_outside_identity_s_cas_callbacks_is_refused_with_a_page(
    sim: httpx.AsyncClient, service: str | None
) -> None:
    await _log_in(sim)  # signed in: a good service would be a redirect at once
    params = {} if service is None else {"service": service}
    refused = await sim.get(LOGIN, params=params)
    posted = await sim.post(
        LOGIN, data={**params, "username": "alice@acme", "password": "alice-pw"}
    )
    for response in (refused, posted):
        assert response.status_code == 400
        assert "location" not in response.headers
        assert response.headers["content-type"].startswith("text/html")
        assert "无效的服务地址 / Invalid service" in response.text


# --- serviceValidate -------------------------------------------------------------------------


@pytest.mark.parametrize("answer_in", [None, "", "JSON", "json", "Json"])
async def test_service_validate_answers_the_member_in_json(
    sim: httpx.AsyncClient, answer_in: str | None
) -> None:
    ticket = await _log_in(sim, "bob@acme", "bob-pw")
    extra = {} if answer_in is None else {"format": answer_in}
    bob = {
        "userName": "bob",
        "tenant": ACME["tenantId"],
        "role": "user",
        "organizationCode": "acme-web",
        "name": "Bob",
    }
    assert await _validate(sim, ticket, **extra) == _success("bob", bob)


@pytest.mark.parametrize("answer_in", ["XML", "xml"])
async def test_service_validate_answers_the_member_in_escaped_xml(
    clock: Clock, answer_in: str
) -> None:
    odd = {"alice": {"name": 'A<l>"ice" & </cas:name>'}}
    async with _client(clock, _scenario(**odd)) as sim:
        ticket = await _log_in(sim)
        response = await sim.get(
            VALIDATE, params={"service": SERVICE, "ticket": ticket, "format": answer_in}
        )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/xml; charset=utf-8"
    assert response.text.startswith('<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas">')
    assert "A&lt;l&gt;" in response.text
    root = ET.fromstring(response.text)
    assert root.tag == "{http://www.yale.edu/tp/cas}serviceResponse"
    success = root.find("cas:authenticationSuccess", NS)
    assert success is not None
    assert [child.tag.split("}")[1] for child in success] == ["user", "attributes"]
    assert success.findtext("cas:user", namespaces=NS) == "alice"
    attributes = success.find("cas:attributes", NS)
    assert attributes is not None
    shown = {
        child.tag.removeprefix("{http://www.yale.edu/tp/cas}"): child.text for child in attributes
    }
    assert shown == {**ALICE, "name": 'A<l>"ice" & </cas:name>'}


async def test_a_failure_in_xml_carries_the_code_as_an_attribute(sim: httpx.AsyncClient) -> None:
    response = await sim.get(
        VALIDATE, params={"service": SERVICE, "ticket": "ST-unknown", "format": "XML"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/xml; charset=utf-8"
    assert response.text == (
        '<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas">'
        '<cas:authenticationFailure code="INVALID_TICKET">Ticket not recognized'
        "</cas:authenticationFailure></cas:serviceResponse>"
    )
    failure = ET.fromstring(response.text).find("cas:authenticationFailure", NS)
    assert failure is not None and failure.get("code") == "INVALID_TICKET"


async def test_a_ticket_is_single_use(sim: httpx.AsyncClient) -> None:
    ticket = await _log_in(sim)
    assert await _validate(sim, ticket) == _success("alice", ALICE)
    assert _failure_code(await _validate(sim, ticket)) == "INVALID_TICKET"


async def test_a_ticket_for_another_service_is_refused_and_burnt(sim: httpx.AsyncClient) -> None:
    ticket = await _log_in(sim)
    other = f"{IDENTITY}/sso/cas/demo-app?tenant={BETA['tenantId']}"
    assert _failure_code(await _validate(sim, ticket, other)) == "INVALID_SERVICE"
    assert _failure_code(await _validate(sim, ticket)) == "INVALID_TICKET"


async def test_a_ticket_lives_five_minutes(sim: httpx.AsyncClient, clock: Clock) -> None:
    first = await _log_in(sim)
    second = _ticket(await sim.get(LOGIN, params={"service": SERVICE}))
    clock.advance(299)
    assert await _validate(sim, first) == _success("alice", ALICE)
    clock.advance(1)
    assert _failure_code(await _validate(sim, second)) == "INVALID_TICKET"


@pytest.mark.parametrize("ticket", ["ST-unknown", "", "TGT-1-abc", "PT-1-abc", "st-", "ST-"])
async def test_a_ticket_not_issued_here_is_invalid(sim: httpx.AsyncClient, ticket: str) -> None:
    issued = await _log_in(sim)
    for shape in (ticket, issued.lower(), issued.replace("ST-", "PT-"), f"{issued}x", issued[1:]):
        if shape:
            assert _failure_code(await _validate(sim, shape)) == "INVALID_TICKET"
    assert await _validate(sim, issued) == _success("alice", ALICE)  # none of those was it


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"service": SERVICE},
        {"ticket": "{ticket}"},
        {"service": "", "ticket": "{ticket}"},
        {"service": SERVICE, "ticket": ""},
        {"service": SERVICE, "ticket": "{ticket}", "format": "HTML"},
    ],
)
async def test_a_request_without_service_or_ticket_is_invalid_and_burns_nothing(
    sim: httpx.AsyncClient, params: dict[str, str]
) -> None:
    ticket = await _log_in(sim)
    sent = {k: v.format(ticket=ticket) for k, v in params.items()}
    response = await sim.get(VALIDATE, params=sent)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert _failure_code(response.json()) == "INVALID_REQUEST"
    assert await _validate(sim, ticket) == _success("alice", ALICE)


async def test_a_member_of_another_tenant_is_answered_with_that_tenant(
    sim: httpx.AsyncClient,
) -> None:
    ticket = await _log_in(sim, "alice@beta", "beta-pw")
    assert await _validate(sim, ticket) == _success(
        "alice",
        {
            "userName": "alice",
            "tenant": BETA["tenantId"],
            "role": "user",
            "organizationCode": "beta",
            "name": "Alice of Beta",
        },
    )


async def test_only_the_scenario_s_apps_have_cas_callbacks(clock: Clock) -> None:
    app = create_auth_centre(world(), callback_base="http://127.0.0.1:9/", clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=SIM) as sim:
        served = await sim.get(LOGIN, params={"service": "http://127.0.0.1:9/sso/cas/demo-app"})
        other = f"http://127.0.0.1:9/sso/cas/{OTHER_APP}"  # not an app of world()
        refused = await sim.get(LOGIN, params={"service": other})
    assert (served.status_code, refused.status_code) == (200, 400)
