"""Anonymous load on `/sso` cannot starve other tenants or flood a tenant's auth centre.

Two tenants, each with its own auth centre (small real HTTP servers, tests/helpers/auth_centres.py);
identity runs in-process over ASGI, where each client can be given its own address.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx2 as httpx
import pytest

from identity.app import create_app
from identity.db import Database
from identity.settings import Settings
from identity.simulator import sender as events
from identity.simulator.sender import Keys, KooGallery
from identity.sso.limits import Buckets
from tests.helpers.auth_centres import auth_centre, silent_auth_centre
from tests.helpers.marketplace_client import BASIC_KEY, KIT_KEY
from tests.helpers.servers import METRICS_AUTH
from tests.helpers.simulator_world import APP_ID, world
from tests.helpers.stack import assert_refused
from tests.helpers.waiting import until

ACME_ID, BETA_ID = "t-acme-0001", "t-beta-0002"
CALLBACK = f"/sso/callback/{APP_ID}"
TOKEN = {"access_token": "at-1", "token_type": "Bearer", "expires_in": 7200, "refresh_token": "r"}
BETA_INFO = {"userName": "alice", "tenant": BETA_ID, "id": "beta-alice"}


class Identity:
    """One in-process identity app; `client(address)` talks to it from that address."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        self.base_url = settings.base_url
        self.clients: list[httpx.AsyncClient] = []

    def client(self, address: str = "127.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        client = httpx.AsyncClient(transport=transport, base_url=self.base_url, timeout=60)
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
        await self.app.state.sso.auth_centre.close()
        await self.app.state.db.dispose()


@pytest.fixture
async def make_identity(db: Database) -> AsyncIterator[Callable[[Settings], Identity]]:
    made: list[Identity] = []

    def make(settings: Settings) -> Identity:
        made.append(Identity(settings))
        return made[-1]

    yield make
    for identity in made:
        await identity.close()


async def provision(
    client: httpx.AsyncClient, private_key_file: Path, tenant: str, domain: str
) -> None:
    keys = Keys.from_private_key_pem(BASIC_KEY, KIT_KEY, private_key_file.read_bytes())
    sender = KooGallery(client, keys, app_id=APP_ID, auth_centre=domain)
    await events.provision(sender, world().tenant(tenant))


async def callback(client: httpx.AsyncClient, tenant: str, code: str = "a-code") -> httpx.Response:
    return await client.get(CALLBACK, params={"code": code, "tenant": tenant})


# --- one slow auth centre ---------------------------------------------------------------


async def test_a_flood_at_one_slow_auth_centre_does_not_stop_another_tenants_login(
    make_identity: Callable[[Settings], Identity], settings: Settings, private_key_file: Path
) -> None:
    """205 anonymous callbacks used to fill the shared pool of 200 connections while acme's
    auth centre never answered; beta's members then timed out too. Acme now gets at most its
    budget of calls, and beta's member signs in at once."""
    identity = make_identity(settings.model_copy(update={"upstream_timeout_seconds": 4.0}))
    client = identity.client()
    with (
        silent_auth_centre() as acme_centre,
        auth_centre((200, json.dumps(TOKEN)), (200, json.dumps(BETA_INFO))) as beta,
    ):
        await provision(client, private_key_file, "acme", acme_centre.url)
        await provision(client, private_key_file, "beta", beta.url)
        flood = [asyncio.create_task(callback(client, ACME_ID)) for _ in range(210)]
        budget = settings.upstream_calls_per_auth_centre
        await until(lambda: acme_centre.connections >= budget, "acme's budget fills")
        started = time.monotonic()
        landed = await callback(client, BETA_ID)
        took = time.monotonic() - started
        answers = await asyncio.gather(*flood)
    assert landed.status_code == 303, landed.text
    assert took < 2.0  # waiting behind acme would take the 4 s deadline
    assert {a.status_code for a in answers} <= {503, 504}
    assert (await client.get("/sso/session")).json()["tenantId"] == BETA_ID


# --- rate limits ------------------------------------------------------------------------


async def test_past_its_limit_an_address_is_told_to_wait_and_others_are_not(
    make_identity: Callable[[Settings], Identity], settings: Settings
) -> None:
    identity = make_identity(settings.model_copy(update={"sso_logins_per_minute_per_address": 3}))
    one, other = identity.client("203.0.113.7"), identity.client("198.51.100.9")
    for _ in range(2):
        assert_refused(await callback(one, "t-nobody"), "tenant_unknown")
    assert_refused(await one.get("/sso/login", params={"tenant": "nobody"}), "tenant_unknown")
    limited = await callback(one, "t-nobody")
    assert_refused(limited, "rate_limited")
    assert limited.headers["retry-after"] == "20"  # a token every 60/3 s
    assert_refused(await one.get("/sso/login", params={"tenant": "nobody"}), "rate_limited")
    assert_refused(await callback(other, "t-nobody"), "tenant_unknown")
    metrics = (await other.get("/metrics", headers=METRICS_AUTH)).text
    assert 'identity_sso_logins_total{outcome="rate_limited"} 2.0' in metrics


async def test_ipv6_addresses_are_counted_by_their_64_prefix(
    make_identity: Callable[[Settings], Identity], settings: Settings
) -> None:
    """A subscriber holds a whole /64: counting single addresses would let one take 2^64."""
    identity = make_identity(settings.model_copy(update={"sso_logins_per_minute_per_address": 1}))
    assert_refused(await callback(identity.client("2001:db8::1"), "t-x"), "tenant_unknown")
    assert_refused(await callback(identity.client("2001:db8::2"), "t-x"), "rate_limited")
    assert_refused(await callback(identity.client("2001:db8:0:1::1"), "t-x"), "tenant_unknown")


async def test_past_its_limit_a_tenant_is_told_to_wait_and_other_tenants_are_not(
    make_identity: Callable[[Settings], Identity], settings: Settings, private_key_file: Path
) -> None:
    """Whatever the addresses, one tenant's callbacks (each a call to its auth centre with its
    client secret) are limited; other tenants are not. Starting a login calls nobody, so it
    does not use up the tenant's callbacks."""
    identity = make_identity(settings.model_copy(update={"sso_logins_per_minute_per_tenant": 3}))
    with auth_centre() as server:
        for tenant in ("acme", "beta"):
            await provision(identity.client(), private_key_file, tenant, server.url)
        for n in range(5):
            started = await identity.client(f"203.0.113.{n}").get(
                "/sso/login", params={"tenant": "acme"}
            )
            assert started.status_code == 302, started.text
        for n in range(3):
            answered = await callback(identity.client(f"203.0.113.{10 + n}"), ACME_ID)
            assert answered.status_code != 429, answered.text
        requests = server.script.requests
        limited = await callback(identity.client("203.0.113.50"), ACME_ID)
        assert_refused(limited, "rate_limited")
        assert server.script.requests == requests  # the auth centre was not called
        login = identity.client("203.0.113.51").get("/sso/login", params={"tenant": "beta"})
        assert (await login).status_code == 302


def test_the_bucket_table_is_bounded() -> None:
    """Each replica keeps at most so many keys; an evicted key comes back with a full bucket
    (erring towards letting a request through)."""
    now = [0.0]
    buckets = Buckets(per_minute=1, max_keys=100, clock=lambda: now[0])
    assert buckets.take("first") == 0
    assert buckets.take("first") == pytest.approx(60)
    for n in range(1000):
        buckets.take(f"203.0.{n // 256}.{n % 256}")
    assert len(buckets) == 100
    assert buckets.take("first") == 0
