"""tenantSync and applicationSync (contract §3.1, §3.2, §2.7)."""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from identity.app import create_app
from identity.crypto import Cipher
from identity.db import Database
from identity.directory.tenants import secret_context
from identity.marketplace.client_secret import encrypt_client_secret
from identity.models import AppCredential, Tenant, TenantInstance
from identity.settings import Settings
from tests.helpers.kit_bodies import (
    APP,
    INSTANCE,
    ORDER,
    SUCCESS,
    TENANT,
    app_body,
    auth_body,
    count,
    kit_ok,
    one,
    rows,
    sender_for,
    stamp,
    tenant_body,
    user,
)
from tests.helpers.marketplace_client import SECRET_KEY, SignedCalls
from tests.helpers.sqlite_files import stored_bytes

SECRET_INVALID = "000101"


async def stored_tenant(db: Database) -> Tenant:
    return await one(db, Tenant, Tenant.tenant_id == TENANT)


async def links(db: Database) -> set[tuple[str, str]]:
    return {(r.instance_id, r.order_id) for r in await rows(db, TenantInstance)}


# --- tenantSync ----------------------------------------------------------------------------


async def test_add_stores_the_tenant(marketplace: SignedCalls, db: Database) -> None:
    await kit_ok(marketplace, "tenantSync", tenant_body())
    t = await stored_tenant(db)
    assert (t.tenant_code, t.name, t.domain_name, t.state) == (
        "acme",
        "Acme",
        "https://acme.example.com",
        "active",
    )


async def test_modify_changes_name_and_domain(marketplace: SignedCalls, db: Database) -> None:
    await kit_ok(marketplace, "tenantSync", tenant_body())
    changed = tenant_body(
        flag=2, name="Acme Ltd", domainName="https://id.acme.example.com", timeStamp=stamp(2)
    )
    await kit_ok(marketplace, "tenantSync", changed)
    t = await stored_tenant(db)
    assert (t.name, t.domain_name, t.tenant_code, t.state) == (
        "Acme Ltd",
        "https://id.acme.example.com",
        "acme",
        "active",
    )


async def test_delete_marks_the_tenant_deleted(marketplace: SignedCalls, db: Database) -> None:
    await kit_ok(marketplace, "tenantSync", tenant_body())
    await kit_ok(marketplace, "tenantSync", tenant_body(flag=0, timeStamp=stamp(2)))
    assert (await stored_tenant(db)).state == "deleted"
    await kit_ok(marketplace, "tenantSync", tenant_body(flag=0, timeStamp=stamp(3)))  # repeated
    assert (await stored_tenant(db)).state == "deleted"


async def test_repeated_add_creates_one_tenant_and_one_link(
    marketplace: SignedCalls, db: Database
) -> None:
    for _ in range(3):
        await kit_ok(marketplace, "tenantSync", tenant_body())
    assert await count(db, Tenant) == 1
    assert await count(db, TenantInstance) == 1


@pytest.mark.parametrize("late_flag", [2, 0])
async def test_an_older_sync_after_a_newer_one_is_ignored(
    marketplace: SignedCalls, db: Database, late_flag: int
) -> None:
    await kit_ok(marketplace, "tenantSync", tenant_body(name="Newest", timeStamp=stamp(5)))
    stale = tenant_body(flag=late_flag, name="Stale", timeStamp=stamp(3))
    assert (await marketplace.kit("tenantSync", stale))["resultCode"] == SUCCESS
    t = await stored_tenant(db)
    assert (t.name, t.state) == ("Newest", "active")


async def test_every_bound_instance_is_linked(marketplace: SignedCalls, db: Database) -> None:
    await kit_ok(marketplace, "tenantSync", tenant_body(instanceId="I-1", orderId="O-1"))
    second = tenant_body(instanceId="I-2", orderId="O-2", timeStamp=stamp(2))
    await kit_ok(marketplace, "tenantSync", second)
    assert await links(db) == {("I-1", "O-1"), ("I-2", "O-2")}
    assert await count(db, Tenant) == 1


async def test_a_late_binding_of_another_instance_is_still_linked(
    marketplace: SignedCalls, db: Database
) -> None:
    """The ordering key is (instanceId, tenantId): an older call for another instance is no
    stale copy of the newer one, so its binding counts; only its tenant attributes are stale."""
    newer = tenant_body(instanceId="I-1", orderId="O-1", name="Newest", timeStamp=stamp(5))
    await kit_ok(marketplace, "tenantSync", newer)
    late = tenant_body(instanceId="I-2", orderId="O-2", name="Stale", timeStamp=stamp(3))
    await kit_ok(marketplace, "tenantSync", late)
    assert await links(db) == {("I-1", "O-1"), ("I-2", "O-2")}
    assert (await stored_tenant(db)).name == "Newest"


async def test_seller_test_tenant_is_stored_without_a_link(
    marketplace: SignedCalls, db: Database
) -> None:
    await kit_ok(marketplace, "tenantSync", tenant_body(instanceId="", orderId=""))
    assert (await stored_tenant(db)).state == "active"
    assert await links(db) == set()


def _gmt8(days: float) -> str:
    moment = datetime.now(timezone(timedelta(hours=8))) + timedelta(days=days)
    return moment.strftime("%Y%m%d%H%M%S%f")[:17]


@pytest.mark.parametrize("field", ["timeStamp", "currentSyncTime"])
async def test_a_sync_time_from_the_future_is_refused(
    marketplace: SignedCalls, db: Database, field: str
) -> None:
    """A far-future time would make every later real sync of the row stale until then."""
    await kit_ok(marketplace, "tenantSync", tenant_body())
    far = {field: "20991231235959999"}
    name, body = (
        ("authSync", auth_body([user("u1")], **far))
        if field == "currentSyncTime"
        else ("tenantSync", tenant_body(flag=0, **far))
    )
    answer = await marketplace.kit(name, body)
    assert answer["resultCode"] == "000002", answer
    assert field in answer["resultMsg"]
    assert (await stored_tenant(db)).state == "active"
    # Up to a day ahead is clock skew, and accepted.
    await kit_ok(marketplace, "tenantSync", tenant_body(name="Skewed", timeStamp=_gmt8(0.9)))
    assert (await stored_tenant(db)).name == "Skewed"


async def test_a_seller_debug_sync_never_touches_a_bound_tenant(
    settings: Settings, db: Database
) -> None:
    """With seller debug syncs persisted, one naming a customer's tenant is still a dry run."""
    persisting = settings.model_copy(update={"persist_seller_debug_syncs": True})
    async with sender_for(persisting) as (sender, _):
        await kit_ok(sender, "tenantSync", tenant_body())
        debug_delete = tenant_body(
            instanceId="", orderId="", flag=0, testFlag=1, timeStamp=stamp(2)
        )
        await kit_ok(sender, "tenantSync", debug_delete)
        assert (await stored_tenant(db)).state == "active"
        assert await links(db) == {(INSTANCE, ORDER)}
        # The seller's own test tenant, never bound, is still persisted.
        own = tenant_body(tenantId="seller-own", instanceId="", orderId="", testFlag=1)
        await kit_ok(sender, "tenantSync", own)
    assert await count(db, Tenant) == 2


# --- applicationSync -----------------------------------------------------------------------


def encrypted(private_key: rsa.RSAPrivateKey, plain: str, variant: int = 0) -> str:
    return encrypt_client_secret(private_key.public_key(), plain, variant=variant)


async def stored_credential(db: Database) -> AppCredential:
    return await one(db, AppCredential, AppCredential.tenant_id == TENANT)


async def stored_secret(db: Database) -> str:
    blob = (await stored_credential(db)).client_secret_enc
    assert blob is not None
    return Cipher(SECRET_KEY).decrypt(blob, secret_context(TENANT, APP))


@pytest.mark.parametrize("variant", [0, 1, 2])
async def test_every_oaep_variant_decrypts(
    marketplace: SignedCalls, db: Database, private_key: rsa.RSAPrivateKey, variant: int
) -> None:
    await kit_ok(
        marketplace, "applicationSync", app_body(encrypted(private_key, "s3cret", variant))
    )
    assert await stored_secret(db) == "s3cret"
    cred = await stored_credential(db)
    assert (cred.app_id, cred.client_id, cred.state) == (APP, "client-1", "active")


async def test_the_plaintext_secret_is_never_stored_returned_or_logged(
    marketplace: SignedCalls,
    db: Database,
    private_key: rsa.RSAPrivateKey,
    database_url: str,
    is_postgres: bool,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    plain = f"plain-{uuid.uuid4().hex}"
    body = app_body(encrypted(private_key, plain), clientId="client-visible-4711")
    answer = await marketplace.kit("applicationSync", body)
    assert answer["resultCode"] == SUCCESS
    assert plain not in json.dumps(answer)
    assert await stored_secret(db) == plain  # stored, but only encrypted:
    assert plain.encode() not in (await stored_credential(db)).client_secret_enc
    captured = capsys.readouterr()
    logs = captured.out + captured.err + caplog.text
    assert "applicationSync" in logs  # the call was logged, so the capture sees the logs
    assert plain not in logs
    if not is_postgres:
        data = stored_bytes(database_url)
        assert b"client-visible-4711" in data  # the file read holds the committed row
        assert plain.encode() not in data


async def test_modify_replaces_client_id_and_secret(
    marketplace: SignedCalls, db: Database, private_key: rsa.RSAPrivateKey
) -> None:
    await kit_ok(marketplace, "applicationSync", app_body(encrypted(private_key, "first")))
    changed = app_body(
        encrypted(private_key, "second"), flag=2, clientId="client-2", timeStamp=stamp(2)
    )
    await kit_ok(marketplace, "applicationSync", changed)
    assert (await stored_credential(db)).client_id == "client-2"
    assert await stored_secret(db) == "second"
    stale = app_body(encrypted(private_key, "stale"), flag=2, clientId="old", timeStamp=stamp(1))
    await kit_ok(marketplace, "applicationSync", stale)
    assert await stored_secret(db) == "second"


def _other_key_ciphertext() -> str:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return encrypt_client_secret(other.public_key(), "s3cret")


@pytest.mark.parametrize(
    "ciphertext",
    [
        pytest.param("not base64 at all!", id="not-base64"),
        pytest.param(base64.b64encode(os.urandom(384)).decode(), id="random-bytes"),
        pytest.param(_other_key_ciphertext(), id="other-key"),
        pytest.param("", id="empty"),
    ],
)
async def test_a_secret_that_does_not_decrypt_is_refused(
    marketplace: SignedCalls, db: Database, ciphertext: str
) -> None:
    answer = await marketplace.kit("applicationSync", app_body(ciphertext))
    assert answer["resultCode"] == SECRET_INVALID, answer
    assert await count(db, AppCredential) == 0


async def test_a_bad_secret_leaves_the_stored_credential_alone(
    marketplace: SignedCalls, db: Database, private_key: rsa.RSAPrivateKey
) -> None:
    await kit_ok(marketplace, "applicationSync", app_body(encrypted(private_key, "good")))
    bad = app_body("garbage", flag=2, clientId="client-2", timeStamp=stamp(2))
    assert (await marketplace.kit("applicationSync", bad))["resultCode"] == SECRET_INVALID
    assert (await stored_credential(db)).client_id == "client-1"
    assert await stored_secret(db) == "good"


async def test_delete_drops_the_secret(
    marketplace: SignedCalls, db: Database, private_key: rsa.RSAPrivateKey
) -> None:
    await kit_ok(marketplace, "applicationSync", app_body(encrypted(private_key, "s3cret")))
    for n in (2, 3):  # a repeated delete also succeeds
        await kit_ok(marketplace, "applicationSync", app_body("", flag=0, timeStamp=stamp(n)))
    cred = await stored_credential(db)
    assert (cred.state, cred.client_secret_enc) == ("deleted", None)


def mime_wrapped(ciphertext: str) -> str:
    """Base64 as MIME writes it: a CRLF line break every 76 characters."""
    return "\r\n".join(ciphertext[i : i + 76] for i in range(0, len(ciphertext), 76))


def url_safe(ciphertext: str) -> str:
    return base64.urlsafe_b64encode(base64.b64decode(ciphertext)).decode()


@pytest.mark.parametrize("reencode", [mime_wrapped, url_safe])
async def test_other_base64_spellings_of_the_secret_decrypt(
    marketplace: SignedCalls,
    db: Database,
    private_key: rsa.RSAPrivateKey,
    reencode: Callable[[str], str],
) -> None:
    ciphertext = encrypted(private_key, "s3cret")
    while reencode is url_safe and not {"-", "_"} & set(url_safe(ciphertext)):
        ciphertext = encrypted(private_key, "s3cret")  # make the URL-safe alphabet matter
    sent = reencode(ciphertext)
    assert sent != ciphertext
    await kit_ok(marketplace, "applicationSync", app_body(sent))
    assert await stored_secret(db) == "s3cret"


# --- domainName: where the client secret goes ------------------------------------------------

REFUSED_DOMAINS = [
    "file:///etc/passwd",
    "javascript:alert(1)",
    "https://acme.example.com/log/q",
    "https://acme.example.com?x=",
    "https://acme.example.com#frag",
    "https://user:pw@acme.example.com",
    "http://acme.example.com",
    "https://127.0.0.1:8443",
    "http://localhost:8001",
    "https://[::1]",
    "https://acme.example.com:99999",
    "https://under_score.example.com",
    "https://127.1",
    "https://2130706433",
    "https://0x7f.1",
    "https://[::ffff:127.0.0.1]",
    "https://0.0.0.0",
    "https://169.254.169.254",
    "https://10.0.0.8",
]


@pytest.mark.parametrize("domain", REFUSED_DOMAINS)
async def test_a_domain_name_that_is_not_an_https_origin_is_refused(
    settings: Settings, db: Database, domain: str
) -> None:
    production = settings.model_copy(update={"allow_loopback_http": False})
    async with sender_for(production) as (sender, _):
        answer = await sender.kit("tenantSync", tenant_body(domainName=domain))
        assert answer["resultCode"] == "000002", answer
        assert answer["resultMsg"].startswith("domainName"), answer
        # A debug call may carry any value (§3.1): answered as usual, and nothing is stored.
        debug = await sender.kit("tenantSync", tenant_body(domainName=domain, testFlag=1))
        assert debug["resultCode"] == SUCCESS, debug
    assert await count(db, Tenant) == 0


@pytest.mark.parametrize(
    ("domain", "stored"),
    [
        ("https://Acme.Example.com/", "https://acme.example.com"),
        ("acme.example.com", "https://acme.example.com"),
        ("https://acme.example.com:8443", "https://acme.example.com:8443"),
        ("https://acme.example.com:443", "https://acme.example.com"),
    ],
)
async def test_an_https_origin_is_stored_as_an_origin(
    marketplace: SignedCalls, db: Database, domain: str, stored: str
) -> None:
    await kit_ok(marketplace, "tenantSync", tenant_body(domainName=domain))
    assert (await stored_tenant(db)).domain_name == stored


async def test_loopback_http_only_when_allowed(settings: Settings, db: Database) -> None:
    body = tenant_body(domainName="http://127.0.0.1:8001")
    for allowed, code in [(False, "000002"), (True, SUCCESS)]:
        custom = settings.model_copy(update={"allow_loopback_http": allowed})
        async with sender_for(custom) as (sender, _):
            assert (await sender.kit("tenantSync", body))["resultCode"] == code
    assert (await stored_tenant(db)).domain_name == "http://127.0.0.1:8001"


async def test_tenants_stored_with_a_refused_domain_are_named_at_start(
    settings: Settings, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """Stored before the check existed: they keep working, and the operator is told."""
    async with db.transaction() as session:
        session.add(
            Tenant(
                tenant_id="T-OLD",
                tenant_code="old",
                name="Old",
                domain_name="https://old.example.com/path?x=",
                last_sync_time=stamp(1),
            )
        )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        pass
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    warned = [x for x in lines if x.get("event") == "tenant_domain_refused"]
    assert [(x["tenant_id"], x["reason"].split(":")[0]) for x in warned] == [
        ("T-OLD", "domainName must be an origin, https")
    ]
