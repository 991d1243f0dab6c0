"""A local sign-in in headless Chromium under an `https://` base URL, where every cookie is a
`__Host-` one: identity serves TLS on loopback with a self-signed certificate made here, and
Chromium is told to accept it. A browser drops a `__Host-` cookie that is not `Secure`,
`Path=/` and without `Domain`, so a form cookie scoped to `/login` would fail every sign-in
with `csrf_failed`."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from playwright.sync_api import expect, sync_playwright

from identity.admin import passwords
from identity.db import Database
from identity.models import Base
from tests.helpers.admin_rows import CODE, NOW, TENANT, Person, add_people, add_tenant
from tests.helpers.chromium import CHROMIUM, FLAGS, needs_chromium
from tests.helpers.marketplace_client import BASIC_KEY, KIT_KEY, SECRET_KEY
from tests.helpers.servers import ServiceProcesses, free_port, service_env

pytestmark = needs_chromium

INITIAL, CHOSEN = "Initial-Pass-1", "Kiwi-Orchard-2026"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def https_identity(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """identity on `https://127.0.0.1:PORT`, its base URL too."""
    cert_file, key_file = self_signed(tmp_path_factory.mktemp("tls"))
    port = free_port()
    base_url = f"https://127.0.0.1:{port}"
    env = service_env(
        database_url,
        secret_key=SECRET_KEY,
        basic_key=BASIC_KEY,
        kit_key=KIT_KEY,
        base_url=base_url,
    )
    env |= {"TEST_TLS_CERTFILE": str(cert_file), "TEST_TLS_KEYFILE": str(key_file)}
    with ServiceProcesses(1, env, ports=[port], tls=True):
        yield base_url


async def _bob_with_an_initial_password(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.transaction() as session:
            for table in reversed(Base.metadata.sorted_tables):
                await session.execute(table.delete())
        await add_tenant(db)
        await add_people(db, Person("bob"))
        hashed = await passwords.hash_password(INITIAL)
        async with db.transaction() as session:
            await passwords.store_initial(session, TENANT, "bob", hashed, NOW)
    finally:
        await db.dispose()


@pytest.fixture
def bob_with_initial_password(database_url: str) -> str:
    """The tenant with bob, who holds an initial password (as a confirmed reset leaves it)."""
    asyncio.run(_bob_with_an_initial_password(database_url))
    return f"bob@{CODE}"


def test_a_local_sign_in_and_the_forced_change_work_under_https(
    https_identity: str, bob_with_initial_password: str
) -> None:
    set_cookies: list[str] = []
    with sync_playwright() as p:
        args = [*FLAGS, "--ignore-certificate-errors"]
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            page = browser.new_page(ignore_https_errors=True)  # for page.request too
            page.on(
                "response",
                lambda answer: set_cookies.extend(
                    h["value"] for h in answer.headers_array() if h["name"].lower() == "set-cookie"
                ),
            )
            page.goto(https_identity + "/login")
            page.fill("#account", bob_with_initial_password)
            page.fill("#password", INITIAL)
            page.locator("#sign-in").click()
            expect(page.locator("#change-password")).to_be_visible()
            expect(page.locator("#current")).to_have_count(0)  # the sign-in is carried, signed
            page.fill("#new", CHOSEN)
            page.fill("#again", CHOSEN)
            page.locator("#save").click()
            expect(page.locator("#name")).to_have_text("Bob")
            assert page.url == https_identity + "/sso/me"
            session = page.request.get(https_identity + "/sso/session")
            assert session.status == 200 and session.json()["userName"] == "bob"
            held = {c["name"]: c for c in page.context.cookies()}
        finally:
            browser.close()
    assert {"__Host-identity_form", "__Host-identity_session"} <= set(held)
    for cookie in set_cookies:
        name, attributes = cookie.split("=", 1)[0], cookie.lower().split(";")[1:]
        assert name.startswith("__Host-"), cookie  # under https, every cookie is one
        attributes = [a.strip() for a in attributes]
        assert "path=/" in attributes and "secure" in attributes, cookie
        assert not any(a.startswith("domain") for a in attributes), cookie
