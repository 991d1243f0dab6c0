"""A two-tenant scenario and browser-like helpers for the simulator tests, and the buyer's
console as a test drives it (`console_world`, `Console`)."""

from __future__ import annotations

import copy
import html
import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx

from identity.simulator.scenario import Scenario

APP_ID = "demo-app"
IDENTITY = "https://identity.example.com"
CALLBACK = f"{IDENTITY}/sso/callback/{APP_ID}"
SIM = "http://127.0.0.1:8001"

ACME: dict[str, Any] = {
    "tenantId": "t-acme-0001",
    "tenantCode": "acme",
    "name": "ACME 示例企业",
    "clientId": "acme-client-id",
    "clientSecret": "acme-client-secret-1",
    "order": {
        "orderId": "CS-ACME-0001",
        "orderLineId": "CS-ACME-0001-1",
        "businessId": "acme-0001",
        "productId": "OFFI-DEMO",
    },
    "departments": [
        {"orgCode": "acme", "orgName": "ACME", "parentCode": ""},
        {"orgCode": "acme-rd", "orgName": "研发部", "parentCode": "acme"},
        {"orgCode": "acme-web", "orgName": "前端组", "parentCode": "acme-rd"},
        {"orgCode": "acme-sales", "orgName": "销售部", "parentCode": "acme"},
    ],
    "members": [
        {
            "userName": "alice",
            "name": "Alice 爱丽丝",
            "orgCode": "acme",
            "role": "admin",
            "password": "alice-pw",
            "mobile": "+8613800000001",
            "email": "alice@acme.example.com",
        },
        {
            "userName": "bob",
            "name": "Bob",
            "orgCode": "acme-web",
            "password": "bob-pw",
            "email": "bob@acme.example.com",
        },
        {
            "userName": "carol",
            "name": "Carol",
            "orgCode": "acme-sales",
            "password": "carol-pw",
            "enable": False,
        },
        {
            "userName": "dave",
            "name": "Dave",
            "orgCode": "acme-sales",
            "password": "dave-pw",
            "authorised": False,
        },
    ],
}

BETA: dict[str, Any] = {
    "tenantId": "t-beta-0002",
    "tenantCode": "beta",
    "name": "Beta Ltd",
    "clientId": "beta-client-id",
    "clientSecret": "beta-client-secret-2",
    "order": {"orderId": "CS-BETA-0002", "orderLineId": "CS-BETA-0002-1"},
    "departments": [{"orgCode": "beta", "orgName": "Beta", "parentCode": ""}],
    "members": [
        {"userName": "alice", "name": "Alice of Beta", "orgCode": "beta", "password": "beta-pw"}
    ],
}


def world_data(*, shared_client: bool = False) -> dict[str, Any]:
    beta = copy.deepcopy(BETA)
    if shared_client:
        beta.update(clientId=ACME["clientId"], clientSecret=ACME["clientSecret"])
    return {"appId": APP_ID, "tenants": [copy.deepcopy(ACME), beta]}


def world(*, shared_client: bool = False) -> Scenario:
    return Scenario.model_validate(world_data(shared_client=shared_client))


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.inputs: dict[str, str] = {}
        self.button = ""
        self._in_button = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a.get("action")
        elif tag == "input":
            self.inputs[a["name"]] = a.get("value", "")
        self._in_button = tag == "button"

    def handle_data(self, data: str) -> None:
        if self._in_button:
            self.button += data


def login_form(page: str) -> _Forms:
    forms = _Forms()
    forms.feed(page)
    assert forms.action is not None, page
    return forms


async def submit(
    sim: httpx.AsyncClient, page: httpx.Response, username: str, password: str
) -> httpx.Response:
    """Fill in and post the login form of `page`, as a browser would."""
    form = login_form(page.text)
    fields = {**form.inputs, "username": username, "password": password}
    assert form.action is not None
    return await sim.post(form.action, data=fields)


def authorize_params(client_id: str = ACME["clientId"], **extra: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "scope": "get_user_info",
        "state": "st8",
    }
    return {k: v for k, v in {**params, **extra}.items() if v != ""}


def redirect_query(response: httpx.Response) -> tuple[str, dict[str, str]]:
    """The redirect target without its query, and the query as a dict of single values."""
    assert response.status_code == 302, response.text
    parts = urlsplit(response.headers["location"])
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return f"{parts.scheme}://{parts.netloc}{parts.path}", query


async def sign_in(
    sim: httpx.AsyncClient, username: str, password: str, client_id: str = ACME["clientId"]
) -> dict[str, str]:
    """Flow B up to the callback; returns the callback's query. Already signed in, the form is
    skipped, as in a browser."""
    page = await sim.get("/api/v1/oauth2/authorize", params=authorize_params(client_id))
    if page.status_code != 302:
        page = await submit(sim, page, username, password)
    where, query = redirect_query(page)
    assert where == CALLBACK
    return query


async def exchange(
    sim: httpx.AsyncClient,
    code: str,
    client_id: str = ACME["clientId"],
    client_secret: str = ACME["clientSecret"],
    **extra: str,
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": client_id,
        "client_secret": client_secret,
        "redirect_uri": CALLBACK,
        **extra,
    }
    return await sim.post("/api/v1/oauth2/token", data={k: v for k, v in form.items() if v})


# --- the buyer's console (identity/simulator/console) -----------------------------------------

BUYER: dict[str, Any] = {
    "customerId": "customer-acme",
    "account": "buyer",
    "name": "ACME Buyer",
    "password": "buyer-pw",
    "mobile": "+8613900000009",
}


def console_world() -> Scenario:
    """No enterprise yet: the buyer creates them (at most 5) in the console."""
    return Scenario.model_validate({"appId": APP_ID, "tenants": [], "buyer": BUYER})


class Console:
    """The buyer's console over HTTP, as a browser without script uses it: it keeps the cookie
    and the page's CSRF token, posts forms and follows the 303 to the page that shows what
    happened."""

    def __init__(self, sim: str) -> None:
        self.http = httpx.AsyncClient(base_url=sim, follow_redirects=True, timeout=60)
        self.csrf = ""

    async def close(self) -> None:
        await self.http.aclose()

    def _keep(self, page: httpx.Response) -> httpx.Response:
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        if found:
            self.csrf = found.group(1)
        return page

    async def get(self, path: str) -> httpx.Response:
        return self._keep(await self.http.get(path))

    async def sign_in(
        self, account: str = BUYER["account"], password: str = BUYER["password"]
    ) -> httpx.Response:
        await self.get("/console/sign-in")
        fields = {"csrf": self.csrf, "account": account, "password": password}
        return self._keep(await self.http.post("/console/sign-in", data=fields))

    async def post(self, path: str, **fields: str) -> httpx.Response:
        return self._keep(await self.http.post(path, data={"csrf": self.csrf, **fields}))

    async def upload(self, path: str, content: bytes) -> httpx.Response:
        files = {"file": ("members.csv", content, "text/csv")}
        return self._keep(await self.http.post(path, data={"csrf": self.csrf}, files=files))


def shown(page: httpx.Response, element_id: str) -> str:
    """The text of the element with `element_id` (tags dropped, spaces folded), or ""."""
    found = re.search(rf'<(\w+)[^>]*\sid="{element_id}"[^>]*>(.*?)</\1>', page.text, re.S)
    if not found:
        return ""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(2))).split())


def calls(page: httpx.Response) -> list[tuple[str, str, str]]:
    """The result's delivery: (interface, resultCode, state) of each call, in order."""
    section = re.search(r'id="result".*?</section>', page.text, re.S)
    rows = re.findall(
        r'<tr class="call (\w+)">.*?<code>(\w+)</code>.*?class="code">([^<]*)<',
        section.group(0) if section else "",
        re.S,
    )
    return [(interface, code, state) for state, interface, code in rows]
