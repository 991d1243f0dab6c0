"""identity and the simulator as separate processes over real HTTP, and a browser-like client.

`Stack` runs `identity` (tests/helpers/servers.py) on a port chosen in advance, so its base URL, the
callback the simulator redirects to, is real; and `identity simulate serve` on another port,
whose URL the sender delivers as every tenant's `domainName`. `Browser` follows redirects
between the two by hand, keeps both cookie sets, and fills in the simulator's login form.
"""

from __future__ import annotations

import html
import re
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2 as httpx
from prometheus_client.parser import text_string_to_metric_families

from identity.simulator import sender as events
from identity.simulator.scenario import Scenario, TenantSpec, dump_scenario
from identity.simulator.sender import Keys, KooGallery
from identity.sso.refusals import CATALOGUE
from tests.helpers.marketplace_client import BASIC_KEY, KIT_KEY, SECRET_KEY
from tests.helpers.servers import METRICS_AUTH, ServiceProcesses, free_port, service_env
from tests.helpers.simulator_world import login_form


@dataclass
class Stack:
    identity: str
    sim: str
    scenario: Scenario
    client: httpx.AsyncClient
    keys: Keys
    processes: list[ServiceProcesses] = field(default_factory=list)
    sender: KooGallery = field(init=False)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """A fresh sender (it remembers instance ids), for a test that starts from empty tables."""
        self.sender = KooGallery(
            self.client, self.keys, app_id=self.scenario.app_id, auth_centre=self.sim
        )

    def tenant(self, key: str) -> TenantSpec:
        return self.scenario.tenant(key)

    async def provision(self, key: str) -> None:
        await events.provision(self.sender, self.tenant(key))

    def browser(self) -> Browser:
        return Browser(self)

    async def sim_stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            return (await client.get(self.sim + "/_sim/stats")).json()  # type: ignore[no-any-return]

    async def sim_post(self, path: str, **params: Any) -> None:
        async with httpx.AsyncClient() as client:
            (await client.post(self.sim + path, params=params)).raise_for_status()

    @property
    def identity_urls(self) -> list[str]:
        """Every identity process's URL (`identity` is the first; they share the database)."""
        return self.processes[0].urls

    def logs(self) -> str:
        return "\n".join(line for p in self.processes for line in p.output())

    def identity_output(self) -> str:
        """Everything the identity processes wrote so far (`logs()` keeps only each tail)."""
        return "".join(self.processes[0].output(limit=None))

    async def metric(self, name: str, **labels: str) -> float:
        """One sample of identity's `/metrics`, 0 when it has not been counted yet."""
        text = (await self.client.get("/metrics", headers=METRICS_AUTH)).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    return float(sample.value)
        return 0.0


@asynccontextmanager
async def running_stack(
    database_url: str,
    private_key_file: Path,
    scenario: Scenario,
    *,
    identity_env: dict[str, str] | None = None,
    sim_args: list[str] | None = None,
    identity_processes: int = 1,
    identity_argv: Callable[[int], list[str]] | None = None,
) -> AsyncIterator[Stack]:
    """Start identity (in `identity_processes` processes, the first on the base URL's port) and
    the simulator; provisioning is left to the test (`Stack.provision`). `identity_argv(port)`
    starts identity another way than tests/helpers/servers.py (`identity serve` itself)."""
    identity_port, sim_port = free_port(), free_port()
    identity, sim = f"http://127.0.0.1:{identity_port}", f"http://127.0.0.1:{sim_port}"
    env = service_env(
        database_url,
        secret_key=SECRET_KEY,
        basic_key=BASIC_KEY,
        kit_key=KIT_KEY,
        base_url=identity,
        log_level="INFO",
    )
    env |= {
        "IDENTITY_SESSION_COOKIE_SECURE": "false",
        "IDENTITY_MARKETPLACE_PRIVATE_KEY_FILE": str(private_key_file),
        **(identity_env or {}),
    }
    with tempfile.TemporaryDirectory() as tmp:
        scenario_file = Path(tmp) / "scenario.json"
        scenario_file.write_text(dump_scenario(scenario))

        def sim_argv(port: int) -> list[str]:
            return [
                *(sys.executable, "-m", "identity.cli", "simulate", "serve"),
                *("--scenario", str(scenario_file), "--port", str(port)),
                *("--identity", identity, "--no-provision", *(sim_args or [])),
            ]

        keys = Keys.from_private_key_pem(BASIC_KEY, KIT_KEY, private_key_file.read_bytes())
        service = ServiceProcesses(
            identity_processes, env, ports=[identity_port], argv=identity_argv
        )
        simulator = ServiceProcesses(1, env, ports=[sim_port], argv=sim_argv)
        with service, simulator:
            async with httpx.AsyncClient(base_url=identity, timeout=30) as client:
                yield Stack(identity, sim, scenario, client, keys, [service, simulator])


class Browsers(Protocol):
    """conftest's `browsers` fixture: a new browser on the module's stack, or on the one given;
    each is closed after the test."""

    def __call__(self, on: Stack | None = None) -> Browser: ...


class Browser:
    """Cookies for both hosts, redirects followed by hand, the simulator's form filled in."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.http = httpx.AsyncClient(follow_redirects=False, timeout=30)
        self.history: list[httpx.Response] = []

    async def close(self) -> None:
        await self.http.aclose()

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.follow(await self.http.get(self._abs(url), **kw))

    async def post(self, url: str, **kw: Any) -> httpx.Response:
        return await self.follow(await self.http.post(self._abs(url), **kw))

    def _abs(self, url: str) -> str:
        return url if "://" in url else self.stack.identity + url

    async def follow(self, response: httpx.Response, limit: int = 10) -> httpx.Response:
        for _ in range(limit):
            self.history.append(response)
            if response.status_code not in (301, 302, 303, 307):
                return response
            target = urljoin(str(response.url), response.headers["location"])
            response = await self.http.get(target)
        raise AssertionError("too many redirects")

    async def post_login(self, page: httpx.Response, account: str, password: str) -> httpx.Response:
        """Fill in the simulator's form (`account@tenantCode`) and post it; not followed."""
        form = login_form(page.text)
        fields = {**form.inputs, "username": account, "password": password}
        assert form.action is not None
        return await self.http.post(urljoin(str(page.url), form.action), data=fields)

    async def submit_login(
        self, page: httpx.Response, account: str, password: str
    ) -> httpx.Response:
        """Post the simulator's form and follow where it leads."""
        return await self.follow(await self.post_login(page, account, password))

    async def flow_b(
        self, tenant: str, account: str, password: str, **params: str
    ) -> httpx.Response:
        """`/sso/login` → authorize → login form → callback → landing page."""
        page = await self.get("/sso/login", params={"tenant": tenant, **params})
        if page.url.port != urlsplit(self.stack.sim).port or page.status_code != 200:
            return page  # refused by identity, or already signed in at the simulator
        return await self.submit_login(page, account, password)

    async def flow_a(self, account: str, password: str) -> httpx.Response:
        """The unified login page (§5.2): the callback gets code and tenant, no state."""
        page = await self.get(
            self.stack.sim + "/unified-login/portal-login",
            params={"ind": "UNOP", "appId": self.stack.scenario.app_id},
        )
        if page.status_code != 200 or "password" not in page.text:
            return page
        return await self.submit_login(page, account, password)

    async def code_for(self, account: str, password: str) -> dict[str, str]:
        """Sign in at the simulator (Flow A) but stop before the callback: its query."""
        page = await self.http.get(
            self.stack.sim + "/unified-login/portal-login",
            params={"ind": "UNOP", "appId": self.stack.scenario.app_id},
        )
        if page.status_code == 200:
            page = await self.post_login(page, account, password)
        assert page.status_code == 302, page.text
        query = parse_qs(urlsplit(page.headers["location"]).query)
        return {k: v[0] for k, v in query.items()}

    async def flow_b_callback(self, tenant: str, account: str, password: str) -> str:
        """Flow B up to, not including, the callback: the callback URL (code, state, tenant)."""
        start = await self.http.get(self.stack.identity + "/sso/login", params={"tenant": tenant})
        assert start.status_code == 302, start.text
        page = await self.http.get(start.headers["location"])
        posted = await self.post_login(page, account, password)
        assert posted.status_code == 302, posted.text
        return str(posted.headers["location"])

    async def session(self) -> httpx.Response:
        return await self.http.get(self.stack.identity + "/sso/session")

    def cookie(self, name: str) -> str | None:
        return self.http.cookies.get(name)


def refusal_reason(response: httpx.Response) -> str | None:
    """The reason code a refusal page names (`<span id="reason">`), or None."""
    found = re.search(r'id="reason">([^<]*)<', response.text)
    return html.unescape(found.group(1)) if found else None


def assert_refused(response: httpx.Response, reason: str) -> None:
    """identity's refusal page: HTML, not a redirect, the reason's 4xx/5xx status, its code in
    `#reason`, and its Chinese and English texts (what went wrong, what to do)."""
    status, zh, en, (zh_todo, en_todo) = CATALOGUE[reason]
    assert response.status_code == status >= 400, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers
    assert response.headers["cache-control"] == "no-store"
    assert refusal_reason(response) == reason, response.text
    text = html.unescape(response.text)
    for message in (zh, en, zh_todo, en_todo):
        assert message in text
    assert re.search(r"[\u4e00-\u9fff]", zh) and re.search(r"[A-Za-z]", en)
