"""Encryption at rest: each ciphertext is bound to exactly one row, and a database written by an
earlier version (version-1 ciphertexts, `/`-joined associated data) keeps working after
`identity migrate`, which re-encrypts it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import httpx2 as httpx
import pytest
from alembic import command
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr
from sqlalchemy import select, text, update

from identity.app import create_app
from identity.crypto import Cipher, derive_key
from identity.db import Database
from identity.directory.tenants import secret_context
from identity.migrate import alembic_config, upgrade
from identity.models import AppCredential
from identity.settings import Settings
from tests.helpers.auth_centres import CALLBACK, INFO, OK, TENANT, canned_auth_centre, provision
from tests.helpers.marketplace_client import SECRET_KEY
from tests.helpers.servers import scratch_postgres
from tests.helpers.simulator_world import ACME, APP_ID
from tests.helpers.sqlite_files import stored_bytes

SECRET = ACME["clientSecret"]


def test_a_secret_does_not_decrypt_for_a_row_whose_names_join_the_same() -> None:
    """Tenant `a/b` + app `c` and tenant `a` + app `b/c` are different rows."""
    cipher = Cipher(SECRET_KEY)
    blob = cipher.encrypt(SECRET, secret_context("a/b", "c"))
    assert cipher.decrypt(blob, secret_context("a/b", "c")) == SECRET
    with pytest.raises(InvalidTag):
        cipher.decrypt(blob, secret_context("a", "b/c"))
    with pytest.raises(InvalidTag):
        cipher.decrypt(blob, secret_context("a/b", "c") + ("",))


def legacy_encrypt(plaintext: str, joined_context: str) -> bytes:
    """What identity wrote before: version 1, the row's names joined with `/`."""
    nonce = os.urandom(12)
    aead = AESGCM(derive_key(SECRET_KEY, "identity/at-rest/v1"))
    return b"\x01" + nonce + aead.encrypt(nonce, plaintext.encode(), joined_context.encode())


@pytest.fixture
def scratch_url(tmp_path: Path) -> Iterator[str]:
    """A database of its own: these tests move it between schema revisions."""
    server = os.environ.get("IDENTITY_TEST_DATABASE_URL")
    if not server:
        yield f"sqlite+aiosqlite:///{tmp_path / 'identity.db'}"
        return
    with scratch_postgres(server, "identity_at_rest") as url:
        yield url


@asynccontextmanager
async def serving(settings: Settings, url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"database_url": url}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=settings.base_url) as client:
        yield client
    await app.state.db.dispose()


V1_SESSION = "0" * 64


async def stored(url: str) -> tuple[bytes, bytes, bytes]:
    """At revision 0002 or 0003: the client secret's and the one session's ciphertexts."""
    db = Database(url)
    try:
        async with db.read() as session:
            secret = (await session.execute(select(AppCredential.client_secret_enc))).scalar_one()
            access, refresh = (
                await session.execute(
                    text("SELECT access_token_enc, refresh_token_enc FROM sessions")
                )
            ).one()
        return secret, access, refresh
    finally:
        await db.dispose()


async def add_version_1_session(url: str) -> None:
    """A signed-in member's row as schema 0002 held it, tokens encrypted the old way."""
    db = Database(url)
    try:
        async with db.transaction() as session:
            await session.execute(
                text(
                    "INSERT INTO sessions (id_hash, tenant_id, app_id, user_name, created_at,"
                    " last_seen_at, expires_at, access_token_enc, refresh_token_enc)"
                    " VALUES (:h, :t, :a, 'alice', :now, :now, :now, :access, :refresh)"
                ),
                {
                    "h": V1_SESSION,
                    "t": TENANT,
                    "a": APP_ID,
                    "now": datetime(2030, 1, 1),
                    "access": legacy_encrypt("a", f"sessions/{V1_SESSION}/access"),
                    "refresh": legacy_encrypt("r", f"sessions/{V1_SESSION}/refresh"),
                },
            )
    finally:
        await db.dispose()


async def write_secret(url: str, blob: bytes) -> None:
    db = Database(url)
    try:
        async with db.transaction() as session:
            await session.execute(update(AppCredential).values(client_secret_enc=blob))
    finally:
        await db.dispose()


async def revision(url: str) -> str:
    db = Database(url)
    try:
        async with db.read() as session:
            return str(
                (
                    await session.execute(text("SELECT version_num FROM alembic_version"))
                ).scalar_one()
            )
    finally:
        await db.dispose()


async def written_by_version_1(
    url: str, settings: Settings, private_key_file: Path, domain: str
) -> None:
    """A tenant with a client secret and a signed-in member, as the previous version stored
    them: schema 0002, version-1 ciphertexts."""
    await asyncio.to_thread(upgrade, url)
    async with serving(settings, url) as identity:
        await provision(identity, private_key_file, domain)
    key = SecretStr(SECRET_KEY)
    await asyncio.to_thread(command.downgrade, alembic_config(url, key), "0002")
    await write_secret(url, legacy_encrypt(SECRET, f"app_credentials/{TENANT}/{APP_ID}"))
    await add_version_1_session(url)
    secret, access, refresh = await stored(url)
    assert secret[:1] == access[:1] == refresh[:1] == b"\x01"


async def test_a_database_of_version_1_keeps_working_after_migrate(
    scratch_url: str, settings: Settings, private_key_file: Path
) -> None:
    with canned_auth_centre(OK, INFO) as domain:
        await written_by_version_1(scratch_url, settings, private_key_file, domain)
        key = SecretStr(SECRET_KEY)
        await asyncio.to_thread(command.upgrade, alembic_config(scratch_url, key), "0003")
        secret, access, refresh = await stored(scratch_url)
        assert secret[:1] == access[:1] == refresh[:1] == b"\x02"  # nothing ambiguous is left
        cipher = Cipher(SECRET_KEY)
        assert cipher.decrypt(secret, secret_context(TENANT, APP_ID)) == SECRET
        assert cipher.decrypt(refresh, ("sessions", V1_SESSION, "refresh")) == "r"
        await asyncio.to_thread(upgrade, scratch_url, key)  # 0004 ends the old sessions
        async with serving(settings, scratch_url) as identity:
            again = await identity.get(CALLBACK, params={"code": "b-code", "tenant": TENANT})
            assert again.status_code == 303, again.text  # the secret reaches the auth centre
    if scratch_url.startswith("sqlite"):
        assert SECRET.encode() not in stored_bytes(scratch_url, log=False)


async def test_migrate_without_the_master_key_refuses_and_changes_nothing(
    scratch_url: str, settings: Settings, private_key_file: Path
) -> None:
    with canned_auth_centre(OK, INFO) as domain:
        await written_by_version_1(scratch_url, settings, private_key_file, domain)
    before = await stored(scratch_url)
    with pytest.raises(RuntimeError, match="IDENTITY_SECRET_KEY"):
        await asyncio.to_thread(upgrade, scratch_url)
    assert await stored(scratch_url) == before
    assert await revision(scratch_url) == "0002"
