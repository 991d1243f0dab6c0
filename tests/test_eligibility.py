"""One rule decides who may use an app and who administers a tenant: whichever condition fails,
a login is refused with that condition's code, and the session, the local sign-in's and the
provider's list of usable apps, the admin check, the console's role column and the signed-in
page all agree at once. A session the marketplace ended says why, for every reason."""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx2 as httpx
import pytest
from sqlalchemy import Update, update

from identity.access import Reason
from identity.admin import service
from identity.crypto import Cipher
from identity.db import Database, Tx, utcnow
from identity.directory import eligibility
from identity.models import (
    ACTIVE,
    DELETED,
    AppCredential,
    Authorisation,
    Instance,
    Member,
    SessionEnding,
    Tenant,
)
from identity.sessions import store as sessions
from identity.sessions.browser import Cookies
from identity.sessions.devices import Device
from identity.sso import admission
from identity.sso.refusals import ENDINGS, Refusal
from tests.helpers.admin_rows import APP, STAMP, TENANT, Person, add_people, add_tenant
from tests.helpers.marketplace_client import SECRET_KEY

APP2 = "APP-2"
GONE = "I-GONE"  # an instance the tenant was never bound to
DEVICE = Device("marketplace", None, None, None)
POLICY = sessions.Policy(
    idle=timedelta(hours=1),
    absolute=timedelta(hours=8),
    renew_margin=timedelta(minutes=1),
    renewal_lease=timedelta(seconds=30),
)
COOKIE = Cookies.for_service("https://identity.example.com", True).session


@pytest.fixture
async def acme(db: Database) -> Database:
    await add_tenant(db)
    await add_people(db, Person("alice", role="admin"), Person("bob"))
    return db


async def change(db: Database, statement: Update) -> None:
    async with db.transaction() as session:
        await session.execute(statement)


BREAKERS = [
    pytest.param(update(Tenant).values(state=DELETED), "tenant_deleted", id="tenant-deleted"),
    pytest.param(update(Instance).values(status="frozen"), "instance_inactive", id="frozen"),
    pytest.param(
        update(AppCredential).values(state=DELETED), "app_not_configured", id="no-credential"
    ),
    pytest.param(
        update(AppCredential).values(instance_id=GONE), "instance_inactive", id="app-instance"
    ),
    pytest.param(
        update(Member).where(Member.user_name == "alice").values(state=DELETED),
        "member_deleted",
        id="member-deleted",
    ),
    pytest.param(
        update(Authorisation).where(Authorisation.user_name == "alice").values(state=DELETED),
        "authorisation_cancelled",
        id="cancelled",
    ),
    pytest.param(
        update(Authorisation).where(Authorisation.user_name == "alice").values(enabled=False),
        "member_disabled",
        id="disabled",
    ),
    pytest.param(
        update(Authorisation).where(Authorisation.user_name == "alice").values(instance_id=GONE),
        "instance_inactive",
        id="authorisation-instance",
    ),
]


async def _readers(db: Database, id_hash: str) -> dict[str, object]:
    """What every reader of the rule says about alice and APP."""
    async with db.read() as session:
        page = await service.members(session, TENANT, service.MemberQuery())
        apps = await eligibility.usable_apps(session, TENANT, "alice")
        admin = await eligibility.is_admin(session, TENANT, "alice")
    async with db.single_read() as conn:
        loaded = await sessions.load(conn, id_hash, APP)
        profile = await admission.profile(conn, TENANT, "alice", "ORG-1")
    role = next(row.role for row in page.items if row.user_name == "alice")
    return {
        "session": loaded is not None,
        "usable": apps,
        "admin": admin,
        "console role": role,
        "signed-in page admin": profile.admin,
    }


async def _admit(db: Database) -> str | None:
    try:
        await db.run_write(lambda tx: admission.admit(tx, Cipher(SECRET_KEY), TENANT, APP, "alice"))
    except Refusal as refusal:
        return refusal.code
    return None


async def _session(db: Database, user_name: str, app_id: str) -> tuple[str, str]:
    """A session of the member holding `app_id`: (raw cookie id, id hash)."""

    def opened(tx: Tx) -> str:
        raw_id, sid = sessions.create(
            tx, POLICY, tenant_id=TENANT, user_name=user_name, device=DEVICE, now=utcnow()
        )
        sessions.add_app(tx, Cipher(SECRET_KEY), sid=sid, app_id=app_id, tokens=None, now=utcnow())
        return raw_id

    raw_id = await db.run_write(opened)
    return raw_id, sessions.hash_id(raw_id)


@pytest.mark.parametrize(("breaker", "code"), BREAKERS)
async def test_each_condition_refuses_with_its_code_and_every_reader_agrees(
    acme: Database, breaker: Update, code: str
) -> None:
    _, id_hash = await _session(acme, "alice", APP)
    everything = {
        "session": True,
        "usable": [APP],
        "admin": True,
        "console role": "admin",
        "signed-in page admin": True,
    }
    assert await _readers(acme, id_hash) == everything
    assert await _admit(acme) is None

    await change(acme, breaker)

    assert await _admit(acme) == code
    assert await _readers(acme, id_hash) == {
        "session": False,
        "usable": [],
        "admin": False,
        "console role": "user",
        "signed-in page admin": False,
    }


async def _second_app(db: Database) -> None:
    """APP2 in the same tenant and instance; alice and bob plain users of it."""
    async with db.transaction() as session:
        session.add(
            AppCredential(
                tenant_id=TENANT,
                app_id=APP2,
                instance_id=f"I-{TENANT}",
                client_id="client-2",
                last_sync_time=STAMP,
            )
        )
        for user_name in ("alice", "bob"):
            session.add(
                Authorisation(
                    tenant_id=TENANT,
                    app_id=APP2,
                    user_name=user_name,
                    instance_id=f"I-{TENANT}",
                    role="user",
                    enabled=True,
                    state=ACTIVE,
                    last_sync_time=STAMP,
                )
            )


SignedInPage = Callable[[str], Awaitable[str]]


@pytest.fixture
def me(client: httpx.AsyncClient) -> SignedInPage:
    async def page(raw_id: str) -> str:
        answer = await client.get("/sso/me", headers={"cookie": f"{COOKIE}={raw_id}"})
        assert answer.status_code == 200, answer.text
        return answer.text

    return page


async def test_an_admin_of_the_tenant_is_one_in_every_app_they_may_use(
    acme: Database, me: SignedInPage
) -> None:
    await _second_app(acme)
    alice, _ = await _session(acme, "alice", APP2)
    bob, _ = await _session(acme, "bob", APP2)

    page = await me(alice)
    assert 'id="admin-console"' in page and "Administrator" in page
    page = await me(bob)
    assert 'id="admin-console"' not in page and "Administrator" not in page

    alice_in_app = (Authorisation.user_name == "alice") & (Authorisation.app_id == APP)
    await change(acme, update(Authorisation).where(alice_in_app).values(enabled=False))
    page = await me(alice)
    assert 'id="admin-console"' not in page and "Administrator" not in page


def test_the_rule_is_its_two_parts_in_one_order() -> None:
    """Both admission statements name the first failing condition: the tenant-and-app part
    and the whole rule put them in the same order."""
    rule = eligibility.RULE
    for part in (eligibility.TENANT_AND_APP, eligibility.MEMBER):
        assert [c for c in rule if c in part] == list(part)
    assert sorted(eligibility.TENANT_AND_APP + eligibility.MEMBER, key=rule.index) == list(rule)


@pytest.mark.parametrize("reason", list(Reason))
async def test_every_ending_reason_is_told_in_its_own_words(
    acme: Database, client: httpx.AsyncClient, reason: Reason
) -> None:
    raw_id = f"ended-by-{reason.value}"
    async with acme.transaction() as session:
        session.add(
            SessionEnding(
                id_hash=sessions.hash_id(raw_id),
                tenant_id=TENANT,
                app_id=APP,
                reason=reason.value,
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
    told = await client.get("/sso/me", headers={"cookie": f"{COOKIE}={raw_id}"})
    assert told.status_code == 401
    zh, en = ENDINGS[reason]
    assert f'id="reason">{reason.value}<' in told.text
    assert en in html.unescape(told.text) and zh in told.text
