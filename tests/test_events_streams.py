"""The change events' streams: one per app's client and tenant, each in its own cursor order
and independent of the others; each batch sent once by concurrent delivery passes and by two
worker processes (PostgreSQL); departments for every app of the tenant, sessions for the apps
they held; and no more than one small query when no app listens."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import event

from identity.access import end_sessions
from identity.db import Database, utcnow
from identity.directory import members
from identity.events import delivery
from identity.models import AppCredential, DirectoryEvent, EventCursor, EventStream, SessionApp
from identity.scim.resources import group_id
from identity.settings import Settings
from identity.worker import event_sources
from tests.helpers.admin_rows import TENANT, add_session, add_tenant
from tests.helpers.kit_bodies import (
    all_org_body,
    auth_body,
    count,
    kit_ok,
    one,
    org,
    org_body,
    stamp,
    users,
)
from tests.helpers.marketplace_client import SECRET_KEY, SignedCalls
from tests.helpers.servers import ROOT
from tests.helpers.webhooks import Receiver, deliver, receiving, subscribe

OTHER = "T-OTHER"


@pytest.fixture
async def receiver(db: Database) -> AsyncIterator[Receiver]:
    """acme and another tenant, both with app APP-1, and a client of APP-1 listening."""
    await add_tenant(db)
    await add_tenant(db, OTHER, "Other")
    async with receiving() as r:
        await subscribe(db, r)
        yield r


async def auth_sync(marketplace: SignedCalls, tenant_id: str, count: int, at: int) -> None:
    body = auth_body(
        users(count, prefix=f"{tenant_id}-{at}-"), tenantId=tenant_id,
        instanceId=f"I-{tenant_id}", timeStamp=stamp(at), currentSyncTime=stamp(at),
    )  # fmt: skip
    await kit_ok(marketplace, "authSync", body)


def in_order(receiver: Receiver, tenant_id: str) -> list[int]:
    return [e["cursor"] for e in receiver.events(tenant_id)]


async def test_each_tenant_keeps_its_order_and_one_tenant_refused_holds_back_no_other(
    marketplace: SignedCalls, db: Database, settings: Settings, receiver: Receiver
) -> None:
    for at in range(1, 4):
        await auth_sync(marketplace, TENANT, 70, at)
        await auth_sync(marketplace, OTHER, 30, at)
    receiver.refusing = {OTHER}
    first = await deliver(db, settings)
    assert first["delivered"] == 3 and first["retried"] == 1
    assert in_order(receiver, TENANT) == list(range(1, 211)) and in_order(receiver, OTHER) == []
    receiver.refusing = set()
    await deliver(db, settings, utcnow() + timedelta(minutes=1))
    assert in_order(receiver, OTHER) == list(range(1, 91))
    assert all(len({e["tenant_id"] for e in d.events}) == 1 for d in receiver.deliveries)


async def test_two_concurrent_passes_send_each_batch_once_and_lose_none(
    marketplace: SignedCalls, db: Database, settings: Settings, receiver: Receiver
) -> None:
    for at in range(1, 4):
        await auth_sync(marketplace, TENANT, 100, at)
        await auth_sync(marketplace, OTHER, 80, at)
    receiver.delay = 0.05
    await asyncio.gather(deliver(db, settings), deliver(db, settings))
    assert_each_batch_once(receiver, {TENANT: 300, OTHER: 240})


def assert_each_batch_once(receiver: Receiver, sizes: dict[str, int]) -> None:
    assert not receiver.unverified
    twice = [w for w, n in Counter(receiver.attempts).items() if n > 1]
    assert not twice, f"sent more than once: {twice}"
    for tenant_id, size in sizes.items():
        assert in_order(receiver, tenant_id) == list(range(1, size + 1)), tenant_id


async def test_a_lease_run_out_mid_send_resends_the_same_batch_and_the_first_records_nothing(
    marketplace: SignedCalls, db: Database, settings: Settings, receiver: Receiver
) -> None:
    """Worker A's send outlasts its lease (as a worker that died would): B sends the batch
    again, under the same webhook-id, and only B's outcome is recorded."""
    await auth_sync(marketplace, TENANT, 3, 1)
    sources = event_sources(settings)
    assert sources is not None
    receiver.delay = 1.0
    lease = timedelta(seconds=0.3)
    async with httpx.AsyncClient(timeout=10) as http_a, httpx.AsyncClient(timeout=10) as http_b:
        worker_a = asyncio.create_task(
            delivery.deliver_due(db, settings, http_a, sources, lease=lease)
        )
        await asyncio.sleep(0.5)
        receiver.delay = 0
        from_b = await delivery.deliver_due(db, settings, http_b, sources, lease=lease)
        from_a = await worker_a
    assert (from_a["delivered"], from_b["delivered"]) == (0, 1)  # A's 2xx came too late
    assert receiver.attempts == [f"msg_{TENANT}_1_3"] * 2
    assert [e["id"] for e in receiver.deliveries[0].events] == [
        e["id"] for e in receiver.deliveries[1].events
    ]
    stream = await one(db, EventStream, EventStream.tenant_id == TENANT)
    assert (stream.delivered_through, stream.claimed_until) == (3, None)


async def test_two_worker_processes_send_each_batch_once(
    marketplace: SignedCalls,
    db: Database,
    database_url: str,
    is_postgres: bool,
    receiver: Receiver,
) -> None:
    """`identity worker --once` twice at a time on the same streams (PostgreSQL: SQLite's one
    writer makes two processes take turns, which proves nothing)."""
    if not is_postgres:
        pytest.skip("two processes claiming at once need PostgreSQL")
    for at in range(1, 4):
        await auth_sync(marketplace, TENANT, 150, at)
        await auth_sync(marketplace, OTHER, 120, at)
    receiver.delay = 0.02
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    env |= {
        "IDENTITY_DATABASE_URL": database_url,
        "IDENTITY_SECRET_KEY": SECRET_KEY,
        "IDENTITY_BASE_URL": "https://identity.example.com",
        "PYTHONPATH": str(ROOT),
    }
    argv = [sys.executable, "-m", "identity.cli", "worker", "--once"]
    for _ in range(2):
        started = [
            asyncio.create_subprocess_exec(*argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
            for _ in range(2)
        ]
        processes = await asyncio.gather(*started)
        assert [await p.wait() for p in processes] == [0, 0]
    assert_each_batch_once(receiver, {TENANT: 450, OTHER: 360})


async def test_departments_concern_every_app_of_the_tenant(
    marketplace: SignedCalls, db: Database, settings: Settings, receiver: Receiver
) -> None:
    async with receiving() as elsewhere:  # a client of an app acme does not have
        await subscribe(db, elsewhere, app_id="APP-ELSEWHERE")
        await kit_ok(marketplace, "singleOrgSync", org_body("D1", "Sales"))
        await deliver(db, settings)
        renamed = org_body("D1", "Sales & Ops", timeStamp=stamp(2))
        await kit_ok(marketplace, "singleOrgSync", renamed)
        await kit_ok(marketplace, "singleOrgSync", org_body("D1", "Sales"))  # older: nothing
        body = all_org_body([org("D2"), org("D3", "D2")], timeStamp=stamp(3))
        await kit_ok(marketplace, "allOrgSync", body)
        await deliver(db, settings)
    assert elsewhere.attempts == []
    got = [(e["type"], e["data"]["id"]) for e in receiver.events(TENANT)]
    assert got == [
        ("directory.group.created", group_id("D1")),
        ("directory.group.updated", group_id("D1")),
        ("directory.group.deleted", group_id("D1")),  # not listed by the full sync
        ("directory.group.created", group_id("D2")),
        ("directory.group.created", group_id("D3")),
    ]
    created, updated, deleted, *_ = receiver.events(TENANT)
    assert created["data"]["resource"]["displayName"] == "Sales"  # as it was when sent
    assert updated["data"]["resource"] is None  # gone by the time it was sent
    assert deleted["data"] == {
        "id": group_id("D1"), "displayName": "Sales & Ops", "resource": None,
    }  # fmt: skip


async def test_a_session_is_ended_for_each_app_it_held(
    db: Database, settings: Settings, receiver: Receiver
) -> None:
    async with receiving() as second:
        await subscribe(db, second, app_id="APP-2")
        sid = await add_session(db, TENANT, "alice", 1)
        other_sid = await add_session(db, TENANT, "alice", 2)
        async with db.transaction() as session:  # acme has a second app
            session.add(
                AppCredential(tenant_id=TENANT, app_id="APP-2", instance_id=f"I-{TENANT}",
                              client_id="client-2", last_sync_time=stamp(1))
            )  # fmt: skip
            session.add_all(SessionApp(sid=s, app_id="APP-2") for s in (sid, other_sid))
        async with db.transaction() as session:
            await end_sessions(session, [other_sid], "APP-2")  # that app's part alone
            await end_sessions(session, [sid])  # a logout: the whole session
        await deliver(db, settings)
    assert [(e["type"], e["data"]["sid"]) for e in receiver.events()] == [
        ("access.session_ended", sid)
    ]
    assert [e["data"]["sid"] for e in second.events()] == [other_sid, sid]
    assert "reason" not in second.events()[0]["data"]


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """Every SQL statement `db` sends meanwhile."""
    sent: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)


@pytest.mark.parametrize("listening", [False, True])
async def test_without_a_listener_a_sync_pays_one_small_query(
    db: Database, listening: bool
) -> None:
    await add_tenant(db)
    if listening:
        async with receiving() as r:
            await subscribe(db, r)
    rows = [
        members.MemberRow(
            user_name=f"u{n}", name="U", org_code="D1", role="user", enabled=True, position=None,
            employee_code=None, employee_type=None, mobile=None, email=None, work_place=None,
            entry_date=None,
        )
        for n in range(500)
    ]  # fmt: skip
    with statements(db) as sent:
        async with db.transaction() as session:
            await members.sync_members(
                session, tenant_id=TENANT, app_id="APP-1", instance_id=f"I-{TENANT}",
                flag=members.AuthFlag.ADD, users=rows, sync_time=stamp(1),
            )  # fmt: skip
    about_events = [s for s in sent if "oidc_clients" in s or "event" in s]
    if listening:
        assert any("INSERT INTO directory_events" in s for s in about_events)
    else:
        assert len(about_events) == 1  # who listens: nobody, so nothing is taken or written
        assert await count(db, EventCursor) == 0 and await count(db, DirectoryEvent) == 0
