"""The fixtures more than one module uses, each defined once here: a migrated database
(SQLite, or PostgreSQL when IDENTITY_TEST_DATABASE_URL is set), the real app over ASGI and a
signing marketplace sender; identity and the simulator as processes (`stack`, `acme`) with
browsers on them; acme's admin signed in; the ISV app's confidential client; a clock the test
moves; the hash-verification counter; and one `identity demo` for the whole run, shared by the
Chromium tests.

A module configures its stack by overriding `stack_env` or `stack_scenario`, never `stack`
itself; a fixture only one module uses stays in that module. What fixtures and tests build
with lives in tests/helpers/."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from identity.admin import passwords
from identity.app import create_app
from identity.db import Database
from identity.migrate import upgrade
from identity.models import Base
from identity.settings import Settings
from identity.simulator.scenario import Scenario
from tests.helpers.admin_api import signed_in
from tests.helpers.clock import Clock
from tests.helpers.demo_process import running_demo
from tests.helpers.marketplace_client import BASIC_KEY, KIT_KEY, SECRET_KEY, SignedCalls
from tests.helpers.oidc_app import POST_LOGOUT, App, register
from tests.helpers.servers import METRICS_TOKEN, scratch_postgres
from tests.helpers.simulator_world import world
from tests.helpers.stack import Browser, Browsers, Stack, running_stack


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh database for this run, built by the Alembic migrations."""
    server = os.environ.get("IDENTITY_TEST_DATABASE_URL")
    if not server:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'identity.db'}"
        upgrade(url)
        yield url
        return
    with scratch_postgres(server, "identity_test") as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


@pytest.fixture(scope="session")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


@pytest.fixture(scope="session")
def private_key_file(
    tmp_path_factory: pytest.TempPathFactory, private_key: rsa.RSAPrivateKey
) -> Path:
    path = tmp_path_factory.mktemp("keys") / "seller.pem"
    path.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@pytest.fixture
def settings(database_url: str, private_key_file: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        base_url="https://identity.example.com",
        secret_key=SecretStr(SECRET_KEY),
        marketplace_basic_key=SecretStr(BASIC_KEY),
        marketplace_kit_key=SecretStr(KIT_KEY),
        marketplace_private_key_file=private_key_file,
        allow_loopback_http=True,  # the fake auth centres listen on 127.0.0.1
        metrics_token=SecretStr(METRICS_TOKEN),
    )


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """Direct database access for assertions; every table is emptied before each test."""
    database = Database(database_url)
    async with database.transaction() as session:
        for table in reversed(Base.metadata.sorted_tables):
            await session.execute(table.delete())
    yield database
    await database.dispose()


@pytest.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://identity.example.com") as c:
        yield c
    await app.state.db.dispose()


@pytest.fixture
def marketplace(client: httpx.AsyncClient) -> SignedCalls:
    return SignedCalls(client)


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    """Extra `IDENTITY_*` settings for this module's stack; a module overrides it."""
    return {}


@pytest.fixture(scope="module")
def stack_scenario() -> Scenario:
    """The world the simulator serves (tests/helpers/simulator_world.py); a module overrides it."""
    return world()


@pytest.fixture(scope="module")
async def stack(
    database_url: str,
    private_key_file: Path,
    stack_scenario: Scenario,
    stack_env: dict[str, str],
) -> AsyncIterator[Stack]:
    """identity and the simulator as processes, one pair per test module
    (tests/helpers/stack.py)."""
    async with running_stack(
        database_url, private_key_file, stack_scenario, identity_env=stack_env
    ) as running:
        yield running


@pytest.fixture
async def acme(stack: Stack, db: Database) -> Stack:
    """The stack with empty tables and the acme enterprise provisioned through signed calls."""
    stack.reset()
    await stack.provision("acme")
    return stack


@pytest.fixture
async def browser(stack: Stack) -> AsyncIterator[Browser]:
    b = stack.browser()
    yield b
    await b.close()


@pytest.fixture
async def browsers(stack: Stack) -> AsyncIterator[Browsers]:
    """New browsers, on this module's stack or the one given, closed after the test."""
    async with AsyncExitStack() as opened:

        def new(on: Stack | None = None) -> Browser:
            b = (on or stack).browser()
            opened.push_async_callback(b.close)
            return b

        yield new


@pytest.fixture
async def alice(acme: Stack, browsers: Browsers) -> Browser:
    """acme's admin (role=admin in authSync), signed in through the marketplace."""
    return await signed_in(acme, browsers(acme), "alice@acme", "alice-pw")


@pytest.fixture
async def app(acme: Stack, db: Database) -> AsyncIterator[App]:
    """The ISV app's back end: a confidential client registered for acme's app."""
    async with httpx.AsyncClient(timeout=30) as http:
        yield await register(acme, db, http, post_logout_redirect_uris=[POST_LOGOUT])


@pytest.fixture
def clock() -> Clock:
    """A clock only the test moves (tests/helpers/clock.py)."""
    return Clock()


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hashes each attempt verified (every attempt must verify exactly one)."""
    seen: list[str] = []
    real: Callable[..., Any] = passwords.HASHER.verify_and_update

    def counting(password: str, password_hash: str) -> Any:
        seen.append(password_hash)
        return real(password, password_hash)

    monkeypatch.setattr(passwords.HASHER, "verify_and_update", counting)
    return seen


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`identity demo` as a process, one for the whole run; yields the printed sign-in URLs
    (Flow B's and the unified login's), alice's account and password, the example app's URL,
    the demo's folder and identity's URL. A test that changes the demo's state (disables a
    member, signs someone in) puts back what later tests rely on, or does not rely on it."""
    folder = tmp_path_factory.mktemp("demo")
    with running_demo(folder, folder) as started:
        flow_b = re.search(r"Flow B\): (\S+)", started.banner)
        flow_a = re.search(r"Flow A\): (\S+)", started.banner)
        alice = re.search(r"Account (alice@\S+)\s+password (\S+)", started.banner)
        example = re.search(r"Example ISV app \(signs in through identity\): (\S+)", started.banner)
        own_host = re.search(r"enterprise's own host: (\S+)", started.banner)
        workbench = re.search(r"enterprise workbench \(CAS\): (\S+)", started.banner)
        console = re.search(
            r"Buyer's console .*: (\S+)\s+account (\S+)\s+password (\S+)", started.banner
        )
        assert flow_b and flow_a and alice and example and own_host, started.banner
        assert workbench and console, started.banner
        yield {
            "url": flow_b.group(1),
            "unified": flow_a.group(1),
            "account": alice.group(1),
            "password": alice.group(2),
            "example": example.group(1),
            "folder": str(folder),
            "identity": started.identity,
            "tenant_host": own_host.group(1),
            "workbench": workbench.group(1),
            "console": console.group(1),
            "buyer": console.group(2),
            "buyer_password": console.group(3),
        }


def pytest_configure(config: pytest.Config) -> None:
    asyncio.set_event_loop_policy(None)
