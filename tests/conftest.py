"""Fixtures: a migrated database (SQLite, or PostgreSQL when IDENTITY_TEST_DATABASE_URL is
set), the real app over ASGI, and a signing marketplace sender."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from identity.app import create_app
from identity.db import Database
from identity.migrate import upgrade
from identity.models import Base
from identity.settings import Settings
from tests.marketplace_client import BASIC_KEY, KIT_KEY, SECRET_KEY, Sender
from tests.servers import METRICS_TOKEN, scratch_postgres
from tests.simulator_world import world
from tests.stack import Browser, Stack, running_stack


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
def marketplace(client: httpx.AsyncClient) -> Sender:
    return Sender(client)


@pytest.fixture(scope="module")
async def stack(database_url: str, private_key_file: Path) -> AsyncIterator[Stack]:
    """identity and the simulator as processes, one pair per test module (tests/stack.py)."""
    async with running_stack(database_url, private_key_file, world()) as running:
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


def pytest_configure(config: pytest.Config) -> None:
    asyncio.set_event_loop_policy(None)
