"""The apps' change events, end to end: signed marketplace syncs write them in their own
transaction, and the worker's delivery POSTs them, signed per Standard Webhooks, to an app
served for real that checks every request with the `standardwebhooks` library. In batches, in
cursor order, retried whole under the same `webhook-id` while the app is down, signed with both
secrets while a rotation overlaps; nothing written while no app listens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from identity.client import EventReceiver
from identity.crypto import Cipher
from identity.db import Database, utcnow
from identity.directory import members
from identity.events import delivery
from identity.models import (
    DirectoryEvent,
    EventCursor,
    EventStream,
    MarketplaceCall,
    OidcClient,
    Tenant,
)
from identity.provider import clients
from identity.scim.resources import user_id
from identity.settings import Settings
from identity.worker import purge
from tests.helpers.admin_rows import TENANT, add_session, add_tenant
from tests.helpers.kit_bodies import auth_body, count, kit_ok, one, rows, stamp, user, users
from tests.helpers.marketplace_client import SECRET_KEY, SignedCalls
from tests.helpers.webhooks import Receiver, deliver, receiving, subscribe

INSTANCE_ID = f"I-{TENANT}"  # the instance add_tenant binds


@pytest.fixture
async def receiver(db: Database) -> AsyncIterator[Receiver]:
    """acme held by a live instance with its app, and an app listening to it."""
    await add_tenant(db)
    async with receiving() as r:
        await subscribe(db, r)
        yield r


async def auth_sync(
    marketplace: SignedCalls, user_list: list[dict[str, object]], at: int = 1, **more: object
) -> None:
    """An authSync of acme's app at sync time `at` (`stamp`)."""
    body = auth_body(
        user_list, instanceId=INSTANCE_ID, timeStamp=stamp(at), currentSyncTime=stamp(at), **more
    )
    await kit_ok(marketplace, "authSync", body)


async def events(db: Database) -> list[tuple[int, str, str]]:
    """(cursor, type, resource key) of every event written, in cursor order."""
    found = await rows(db, DirectoryEvent)
    return sorted((e.cursor, e.type, e.resource_key) for e in found)


async def test_a_500_member_auth_sync_arrives_in_batches_in_cursor_order(
    marketplace: SignedCalls, db: Database, settings: Settings, receiver: Receiver
) -> None:
    await auth_sync(marketplace, users(500))
    written = await events(db)
    assert [c for c, _, _ in written] == list(range(1, 501))
    assert {t for _, t, _ in written} == {"directory.user.created"}
    assert (await one(db, EventCursor)).cursor == 500

    sent = await deliver(db, settings)

    assert sent == {"delivered": 5, "events": 500, "retried": 0, "given_up": 0}
    assert not receiver.unverified
    assert [len(d.events) for d in receiver.deliveries] == [100] * 5
    assert [d.webhook_id for d in receiver.deliveries] == [
        f"msg_{TENANT}_{first}_{first + 99}" for first in range(1, 501, 100)
    ]
    got = receiver.events()
    assert [e["cursor"] for e in got] == list(range(1, 501))
    first = got[0]
    assert first["id"] == f"evt_{TENANT}_1" and first["tenant_id"] == TENANT
    assert first["type"] == "directory.user.created" and first["timestamp"].endswith("Z")
    data = first["data"]
    assert data["id"] == user_id("u0000") and data["userName"] == "u0000@Acme"
    assert data["resource"]["userName"] == "u0000@Acme" and data["resource"]["active"] is True
    assert data["resource"]["id"] == data["id"]
    assert receiver.deliveries[0].body["type"] == "batch"
    handed = EventReceiver(receiver.secrets).parse(receiver.deliveries[0].body)  # the app's kit
    assert handed[0].resource_id == user_id("u0000") and handed[-1].cursor == 100
    stream = await one(db, EventStream)
    assert (stream.delivered_through, stream.batch_through, stream.attempts) == (500, None, 0)


async def test_the_events_are_written_by_the_sync_or_not_at_all(
    marketplace: SignedCalls, db: Database, receiver: Receiver
) -> None:
    """A sync that fails takes its events with it; a debug call (rolled back) writes none."""
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await members.sync_members(
                session, tenant_id=TENANT, app_id="APP-1", instance_id=INSTANCE_ID,
                flag=members.AuthFlag.ADD, users=[_row("bob")], sync_time=stamp(1),
            )  # fmt: skip
            assert await session.scalar(select(EventCursor.cursor)) == 1  # written, then:
            raise RuntimeError("the sync fails after its events were written")
    await auth_sync(marketplace, [user("carol")], testFlag=1)
    assert await events(db) == []
    assert await count(db, EventCursor) == 0
    await auth_sync(marketplace, [user("dave")])
    assert await events(db) == [(1, "directory.user.created", "dave")]


def _row(name: str) -> members.MemberRow:
    return members.MemberRow(
        user_name=name, name=name.title(), org_code="D1", role="user", enabled=True,
        position=None, employee_code=None, employee_type=None, mobile=None, email=None,
        work_place=None, entry_date=None,
    )  # fmt: skip


async def test_each_member_is_told_what_changed_and_the_counts_stay_right(
    marketplace: SignedCalls, db: Database, receiver: Receiver
) -> None:
    await auth_sync(marketplace, [user("alice"), user("bob"), user("carol")])
    await auth_sync(marketplace, [user("alice", enable="false"), user("bob", name="Bobby"),
                                  user("erin")], at=2, flag=2)  # fmt: skip
    await auth_sync(marketplace, [user("carol")], flag=3, at=3)
    await auth_sync(marketplace, [user("bob")], flag=0, at=4)
    await auth_sync(marketplace, [user("carol"), user("alice")], at=5)
    await auth_sync(marketplace, [user("erin", name="Old")], at=1)  # stale
    assert (await events(db))[3:] == [
        (4, "directory.user.deactivated", "alice"),
        (5, "directory.user.updated", "bob"),
        (6, "directory.user.created", "erin"),
        (7, "directory.user.deactivated", "carol"),
        (8, "directory.user.deleted", "bob"),
        (9, "directory.user.updated", "alice"),  # enabled again: the same User, active
        (10, "directory.user.created", "carol"),  # authorised again after the cancel
    ]
    said = [c.changes for c in sorted(await rows(db, MarketplaceCall), key=lambda c: c.id)]
    assert [(c or {}).get("added") for c in said] == [3, 1, 0, 0, 1, 0]


async def test_an_app_that_was_down_gets_the_same_batch_later(
    marketplace: SignedCalls, db: Database, settings: Settings, receiver: Receiver
) -> None:
    await auth_sync(marketplace, users(150))
    receiver.down = True
    now = utcnow()
    assert await deliver(db, settings, now) == {
        "delivered": 0, "events": 0, "retried": 1, "given_up": 0,
    }  # fmt: skip
    stream = await one(db, EventStream)
    assert (stream.batch_through, stream.attempts) == (100, 1)
    assert timedelta(seconds=10) < stream.next_attempt_at - now <= timedelta(seconds=16)
    await auth_sync(marketplace, users(20, prefix="late"), at=2)
    assert (await deliver(db, settings, now + timedelta(seconds=5)))["retried"] == 0  # not due
    receiver.down = False
    later = await deliver(db, settings, now + timedelta(seconds=16))
    assert later == {"delivered": 2, "events": 170, "retried": 0, "given_up": 0}
    assert receiver.attempts == [f"msg_{TENANT}_1_100"] * 2 + [f"msg_{TENANT}_101_170"]
    assert [e["cursor"] for e in receiver.events()] == list(range(1, 171))


async def test_a_batch_refused_past_the_give_up_time_is_skipped_and_counted(
    marketplace: SignedCalls, db: Database, settings: Settings, receiver: Receiver
) -> None:
    await auth_sync(marketplace, users(3))
    receiver.down = True
    now = utcnow()
    await deliver(db, settings, now)
    later = now + timedelta(hours=settings.backchannel_give_up_hours, seconds=1)
    assert (await deliver(db, settings, later))["given_up"] == 1
    stream = await one(db, EventStream)
    assert (stream.delivered_through, stream.skipped, stream.batch_through) == (3, 3, None)
    receiver.down = False
    await auth_sync(marketplace, [user("next")], at=2)
    await deliver(db, settings, later)
    assert [e["cursor"] for e in receiver.events()] == [4]


async def test_both_secrets_sign_while_a_rotation_overlaps(
    marketplace: SignedCalls, db: Database, settings: Settings, receiver: Receiver
) -> None:
    client_id = await one(db, OidcClient)
    old = receiver.secrets[0]
    async with db.transaction() as session:
        new = await clients.rotate_events_secret(
            session, Cipher(SECRET_KEY), client_id.client_id, timedelta(hours=1), utcnow()
        )
    assert new is not None and new != old
    receiver.secrets = [old, new]  # each must verify the request alone
    await auth_sync(marketplace, [user("alice")])
    await deliver(db, settings)
    [overlapping] = receiver.deliveries
    assert len(overlapping.signatures) == 2 and not receiver.unverified
    async with db.transaction() as session:  # the overlap is over
        await session.execute(update(OidcClient).values(events_previous_until=utcnow()))
    receiver.secrets = [new]
    await auth_sync(marketplace, [user("bob")], at=2)
    await deliver(db, settings)
    assert len(receiver.deliveries[-1].signatures) == 1 and not receiver.unverified


async def test_no_listening_app_no_rows(
    marketplace: SignedCalls, db: Database, settings: Settings
) -> None:
    """A client without an events URI, or of an app the tenant does not have, hears nothing;
    the sync writes nothing of the events."""
    await add_tenant(db)
    async with receiving() as r:
        await subscribe(db, r, app_id="APP-ELSEWHERE")
    async with db.transaction() as session:
        await session.execute(update(OidcClient).values(events_uri=None))
    async with receiving() as r:
        await subscribe(db, r, app_id="APP-ELSEWHERE")
    await auth_sync(marketplace, users(50))
    await add_session(db, TENANT, "u0001", 1)
    await auth_sync(marketplace, [user("u0001")], flag=0, at=2)
    assert await count(db, DirectoryEvent) == 0 and await count(db, EventStream) == 0
    assert await count(db, EventCursor) == 0


async def test_a_disabled_member_is_deactivated_and_their_session_ended(
    marketplace: SignedCalls, db: Database, settings: Settings, receiver: Receiver
) -> None:
    await auth_sync(marketplace, [user("alice")])
    sid = await add_session(db, TENANT, "alice", 1)
    await auth_sync(marketplace, [user("alice", enable="false")], flag=2, at=2)
    await deliver(db, settings)
    created, deactivated, ended = receiver.events()
    assert deactivated["type"] == "directory.user.deactivated"
    assert deactivated["data"]["resource"]["active"] is False
    assert ended["type"] == "access.session_ended"
    assert ended["data"] == {
        "id": user_id("alice"), "userName": "alice@Acme", "sid": sid, "reason": "member_disabled",
    }  # fmt: skip


async def test_a_removed_client_takes_its_streams_and_a_hidden_tenant_waits(
    marketplace: SignedCalls, db: Database, settings: Settings, receiver: Receiver
) -> None:
    await auth_sync(marketplace, [user("alice")])
    async with db.transaction() as session:  # the tenant is deleted meanwhile
        await session.execute(update(Tenant).values(state="deleted"))
    now = utcnow()
    assert await deliver(db, settings, now) == {
        "delivered": 0, "events": 0, "retried": 0, "given_up": 0,
    }  # fmt: skip
    stream = await one(db, EventStream)
    assert stream.next_attempt_at - now == delivery.UNSEEN and stream.delivered_through == 0
    assert receiver.attempts == []
    async with db.transaction() as session:
        assert await clients.remove(session, stream.client_id)
    assert await count(db, EventStream) == 0


async def test_events_are_purged_by_age(db: Database, settings: Settings) -> None:
    await add_tenant(db)
    old = utcnow() - timedelta(days=settings.retention_days, hours=1)
    async with db.transaction() as session:
        session.add_all(
            DirectoryEvent(tenant_id=TENANT, cursor=n, type="directory.user.created",
                           resource_key=f"u{n}", created_at=old if n < 3 else utcnow())
            for n in range(1, 5)
        )  # fmt: skip
    assert (await purge(db, settings))["directory_events"] == 2
    assert [c for c, _, _ in await events(db)] == [3, 4]
